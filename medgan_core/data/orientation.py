"""One canonical orientation for every volume, whatever format it came in.

Canonical orientation: **LPS+** (the DICOM / ITK patient coordinate system), stored as a numpy array
``[Z, Y, X]`` (slowest axis first, as `SimpleITK.GetArrayFromImage` returns it):

- X (last array axis, image columns) increases towards the patient's **Left**;
- Y (middle axis, image rows) increases towards **Posterior**;
- Z (first axis, slice index) increases towards **Superior** (slice 0 is the most inferior).

An axial slice ``volume[z]`` drawn with row 0 at the top therefore shows **anterior at the top** and the
**patient's right on the viewer's left**: the radiological convention every clinical CT viewer uses (as if
looking up from the patient's feet). NIfTI (RAS+ world), MetaImage and DICOM (LPS+ world) all go through
`to_canonical`, so the same anatomy gives identical slices whatever the file format or storage order.

Oblique acquisitions are brought to the *closest* canonical axes (a permutation and flips of the voxel grid,
never a resampling), as `SimpleITK.DICOMOrient` does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

CANONICAL_ORIENTATION = "LPS"


def orientation_code(direction) -> str:
    """Three-letter code of 9 LPS+ direction cosines (row-major 3x3, columns = index axes i, j, k), e.g. 'LPS'.

    DICOM convention, as SimpleITK's DICOMOrientImageFilter.GetOrientationFromDirectionCosines: each letter is
    the patient direction (R/L, A/P, I/S) its index axis points to, the axis its cosine is largest along.
    """
    matrix = np.asarray(direction, dtype=np.float64)
    if matrix.size != 9:
        raise ValueError(f"orientation codes need 9 direction cosines (a 3-D grid), got {matrix.size}")
    ends = ("RL", "AP", "IS")  # (negative, positive) end of the LPS+ axes x, y, z
    code = ""
    for column in matrix.reshape(3, 3).T:
        axis = int(np.abs(column).argmax())
        code += ends[axis][int(column[axis] > 0)]
    return code


def to_canonical(image: sitk.Image) -> sitk.Image:
    """Permute and flip the voxel grid of a 3-D image so its index axes point to L, P and S (no resampling)."""
    if image.GetDimension() != 3:
        raise ValueError(f"reorientation needs a 3-D image, got {image.GetDimension()}-D")
    if orientation_code(image.GetDirection()) == CANONICAL_ORIENTATION:
        return image
    return sitk.DICOMOrient(image, CANONICAL_ORIENTATION)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """LPS+ geometry of a voxel grid: spacing and origin along (x, y, z) in mm, direction row-major 3x3."""

    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]


def canonical_array(image: sitk.Image) -> tuple[np.ndarray, Geometry]:
    """The voxels of a 3-D SimpleITK image as a canonical LPS+ array [Z, Y, X] plus the matching geometry."""
    if image.GetDimension() != 3:
        raise ValueError(f"reorientation needs a 3-D image, got {image.GetDimension()}-D")
    return canonical_from_voxels(
        sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    )


def canonical_from_voxels(voxels: np.ndarray, spacing_xyz, origin_xyz, direction) -> tuple[np.ndarray, Geometry]:
    """Voxels stored [K, J, I] with LPS+ geometry -> (canonical array [Z, Y, X], its geometry).

    Same result as ``sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))``, but the permutation and flips
    are numpy views (no copy of a 100 MB CT volume). Each index axis goes to the patient axis its direction
    cosine is closest to; grids where two index axes share one patient axis (45 degree obliques) fall back
    to SimpleITK.DICOMOrient.
    """
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)  # columns: LPS+ directions of i, j, k
    patient_axis = np.abs(matrix).argmax(axis=0)  # index axis a points mostly along LPS axis patient_axis[a]
    if sorted(patient_axis.tolist()) != [0, 1, 2]:
        oriented = to_canonical(image_from_array(voxels, spacing_xyz, origin_xyz, tuple(matrix.ravel())))
        geometry = Geometry(oriented.GetSpacing(), oriented.GetOrigin(), oriented.GetDirection())
        return sitk.GetArrayFromImage(oriented), geometry
    source_of = np.argsort(patient_axis)  # source index axis feeding canonical axis b (0 = L, 1 = P, 2 = S)
    signs = np.sign(matrix[patient_axis[source_of], source_of])
    return _permute_and_flip(voxels, spacing_xyz, origin_xyz, matrix, source_of, signs)


def in_plane_canonical(voxels: np.ndarray, spacing_xyz, origin_xyz, direction) -> tuple[np.ndarray, Geometry]:
    """Keep the stored slice axis K (an acquisition stack, e.g. cardiac short axis) and orient only the plane.

    Returns [K, rows, cols]: K flipped to increase towards the positive end (L, P or S) of the patient axis it
    is closest to; of the two remaining patient axes, columns take the first in L, P, S order (increasing
    towards L, or P for sagittal-like stacks) and rows the second (increasing towards P, or towards *inferior*
    so that superior is at the top). For a stack closest to axial this is exactly `canonical_from_voxels`.
    """
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)  # columns: LPS+ directions of i, j, k
    slice_axis = int(np.abs(matrix[:, 2]).argmax())
    col_patient, row_patient = [a for a in range(3) if a != slice_axis]
    straight = abs(matrix[col_patient, 0]) + abs(matrix[row_patient, 1])
    swapped = abs(matrix[col_patient, 1]) + abs(matrix[row_patient, 0])
    col_index, row_index = (0, 1) if straight >= swapped else (1, 0)  # index axis (i or j) feeding cols / rows
    source_of = np.array([col_index, row_index, 2])  # new index axes (cols, rows, slices) <- source index axes
    signs = np.array(
        [
            np.sign(matrix[col_patient, col_index]) or 1.0,
            (np.sign(matrix[row_patient, row_index]) or 1.0) * (-1.0 if row_patient == 2 else 1.0),
            np.sign(matrix[slice_axis, 2]) or 1.0,
        ]
    )
    return _permute_and_flip(voxels, spacing_xyz, origin_xyz, matrix, source_of, signs)


def _permute_and_flip(voxels, spacing_xyz, origin_xyz, matrix, source_of, signs) -> tuple[np.ndarray, Geometry]:
    """New index axis b takes source index axis source_of[b], reversed where signs[b] < 0 (numpy views)."""
    size = np.array(voxels.shape[::-1])  # (I, J, K)
    spacing = np.asarray(spacing_xyz, dtype=np.float64)
    array = voxels.transpose([2 - source_of[2 - m] for m in range(3)])  # numpy axis n is index axis 2 - n
    flip_axes = tuple(m for m in range(3) if signs[2 - m] < 0)
    if flip_axes:
        array = np.flip(array, axis=flip_axes)
    source_index = np.zeros(3)
    source_index[source_of] = np.where(signs > 0, 0, size[source_of] - 1)  # where the new first voxel was
    origin = np.asarray(origin_xyz, dtype=np.float64) + matrix @ (source_index * spacing)
    new_direction = matrix[:, source_of] * signs
    geometry = Geometry(
        tuple(spacing[source_of].tolist()), tuple(origin.tolist()), tuple(new_direction.ravel().tolist())
    )
    return array, geometry


def orient_voxels(voxels: np.ndarray, spacing_xyz, origin_xyz, direction, mode: str = "canonical"):
    """Voxels stored [K, J, I] -> (array, Geometry) by `mode`: 'canonical' (LPS+ [Z, Y, X]), 'in-plane'
    (keep the stored slice axis, see `in_plane_canonical`) or 'none' (as stored)."""
    if mode == "canonical":
        return canonical_from_voxels(voxels, spacing_xyz, origin_xyz, direction)
    if mode == "in-plane":
        return in_plane_canonical(voxels, spacing_xyz, origin_xyz, direction)
    if mode == "none":
        return voxels, Geometry(tuple(spacing_xyz), tuple(origin_xyz), tuple(direction))
    raise ValueError(f"unknown orientation mode {mode!r} (canonical, in-plane or none)")


def image_from_array(
    array: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    origin_xyz: tuple[float, float, float],
    direction: tuple[float, ...],
) -> sitk.Image:
    """Wrap a voxel array ``[K, J, I]`` as a SimpleITK image with LPS+ geometry.

    spacing_xyz: voxel size along index axes i, j, k (mm); origin_xyz: LPS+ position of voxel [0, 0, 0] (mm);
    direction: 9 numbers, row-major 3x3 matrix whose columns are the LPS+ unit vectors of index axes i, j, k.
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in spacing_xyz])
    image.SetOrigin([float(o) for o in origin_xyz])
    image.SetDirection([float(d) for d in direction])
    return image


def ras_affine_to_lps(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Split a NIfTI voxel-to-RAS+ affine (4x4) into ITK's LPS+ (spacing_xyz, origin_xyz, direction)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    linear = flip @ np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise ValueError("affine has a zero-length voxel axis")
    direction = linear / spacing
    origin = flip @ np.asarray(affine, dtype=np.float64)[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())
