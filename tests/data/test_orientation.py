"""Canonical LPS+ orientation, checked against SimpleITK's DICOMOrient and ITK's NIfTI reader."""

import itertools

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medgan_core.data.orientation import canonical_array, orientation_code, ras_affine_to_lps, to_canonical


def _rotation_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("permutation", list(itertools.permutations(range(3))))
def test_canonical_array_matches_dicomorient_for_every_axis_order_and_flip(permutation):
    rng = np.random.default_rng(0)
    for signs in itertools.product([1.0, -1.0], repeat=3):
        direction = np.zeros((3, 3))
        for index_axis, patient_axis in enumerate(permutation):
            direction[patient_axis, index_axis] = signs[index_axis]
        direction = _rotation_z(0.15) @ direction  # slightly oblique, as scanners store them
        image = sitk.GetImageFromArray(rng.integers(-1000, 1000, (5, 6, 7)).astype(np.int16))
        image.SetDirection(direction.ravel().tolist())
        image.SetSpacing([0.5, 0.7, 2.0])
        image.SetOrigin([10.0, -20.0, 30.0])

        array, geometry = canonical_array(image)
        reference = sitk.DICOMOrient(image, "LPS")
        np.testing.assert_array_equal(array, sitk.GetArrayFromImage(reference))
        np.testing.assert_allclose(geometry.spacing_xyz, reference.GetSpacing())
        np.testing.assert_allclose(geometry.origin_xyz, reference.GetOrigin(), atol=1e-9)
        np.testing.assert_allclose(geometry.direction, reference.GetDirection(), atol=1e-12)
        assert orientation_code(to_canonical(image).GetDirection()) == "LPS"


def test_ras_affine_to_lps_matches_itk_nifti_reader(tmp_path):
    affine = np.eye(4)
    affine[:3, :3] = _rotation_z(0.3) @ np.diag([-0.8, 0.9, 2.5])
    affine[:3, 3] = [12.0, -34.0, 56.0]
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), affine), tmp_path / "a.nii")
    image = sitk.ReadImage(str(tmp_path / "a.nii"))
    spacing, origin, direction = ras_affine_to_lps(affine)
    np.testing.assert_allclose(spacing, image.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-6)


def test_orientation_code_needs_3d():
    with pytest.raises(ValueError, match="3-D"):
        orientation_code(sitk.Image(4, 4, sitk.sitkUInt8).GetDirection())


def test_orientation_code_from_cosines_matches_simpleitk():
    """The code straight from direction cosines (no SimpleITK image) equals SimpleITK's, for all 48 axis orders and
    flips, each also tilted by up to 40 degrees about random axes (beyond 45 degrees the closest axis changes)."""
    from scipy.spatial.transform import Rotation

    reference = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines
    rng = np.random.default_rng(3)
    for permutation in itertools.permutations(range(3)):
        for signs in itertools.product([1.0, -1.0], repeat=3):
            direction = np.zeros((3, 3))
            for index_axis, patient_axis in enumerate(permutation):
                direction[patient_axis, index_axis] = signs[index_axis]
            for _ in range(4):
                axis = rng.normal(size=3)
                tilt = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0, 40)))
                cosines = tuple((tilt.as_matrix() @ direction).ravel())
                assert orientation_code(cosines) == reference(cosines), (permutation, signs, cosines)


def test_in_plane_mode_equals_canonical_for_axial_stacks_and_keeps_the_slice_axis_otherwise():
    from medgan_core.data.orientation import canonical_from_voxels, in_plane_canonical

    rng = np.random.default_rng(2)
    voxels = rng.integers(0, 100, (5, 6, 7)).astype(np.int16)  # [K, J, I]
    for in_plane in itertools.permutations(range(2)):
        for signs in itertools.product([1.0, -1.0], repeat=3):
            direction = np.zeros((3, 3))
            direction[in_plane[0], 0], direction[in_plane[1], 1], direction[2, 2] = signs
            direction = _rotation_z(0.2) @ direction
            args = (voxels, (0.5, 0.7, 2.0), (1.0, 2.0, 3.0), direction.ravel())
            array, geometry = in_plane_canonical(*args)
            reference, reference_geometry = canonical_from_voxels(*args)
            np.testing.assert_array_equal(array, reference)
            np.testing.assert_allclose(geometry.origin_xyz, reference_geometry.origin_xyz, atol=1e-9)
    # a coronal stack (slice normal along posterior): slices stay slices, superior at the top, left on the right
    coronal = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # i -> L, j -> S, k -> P
    array, geometry = in_plane_canonical(voxels, (0.5, 0.7, 2.0), (0.0, 0.0, 0.0), coronal.ravel())
    assert array.shape == (5, 6, 7)
    np.testing.assert_array_equal(array, voxels[:, ::-1, :])  # rows now run towards inferior
    cols, rows, normal = np.asarray(geometry.direction).reshape(3, 3).T
    assert cols[0] == 1.0 and rows[2] == -1.0 and normal[1] == 1.0
