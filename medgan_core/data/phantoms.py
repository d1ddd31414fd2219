"""Synthetic phantoms written in the real formats of the paper's datasets (for tests, demos and benchmarks).

Used only where no real file ships offline: a CT volume with a liver mask (in-house liver CT, SLIVER07), cine
MRI (ACDC), 4-channel brain MRI (MSD) and chest radiographs (ChestX-ray14). Each phantom is built once in the
canonical layout ``[Z, Y, X]`` LPS+ (see `medgan_core.data.orientation`) and written in a *different* storage
order per format, with the geometry that puts every voxel at the same physical (LPS+, mm) position:

- NIfTI: RAS+ voxel order (i towards Right, j Anterior, k Superior), the usual nibabel canonical storage;
- MetaImage: i Left, j Posterior, k *Inferior* (slices stored head first);
- DICOM series: rows run towards the patient's *Right* (ImageOrientationPatient -1,0,0 / 0,1,0), files named
  in reverse slice order, stored values HU + 1024 with RescaleIntercept -1024.

Every phantom carries an asymmetric marker: a bright block in the anterior, left, superior corner. In a
canonical axial slice near the top of the volume it lands at the top (anterior) right (patient's left, shown
on the viewer's right in the radiological convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPACING_XYZ = (0.8, 0.7, 2.5)  # mm, deliberately anisotropic
ORIGIN_XYZ = (-100.0, -120.0, -50.0)  # LPS+ mm of canonical voxel [0, 0, 0]
MARKER_HU = 1200.0
SHAPE_DEFAULT = (12, 48, 64)  # [Z, Y, X] of the CT phantoms


def marker_box(shape_zyx: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Canonical [Z, Y, X] block of the marker: top 2 slices, first 1/6 of rows, last 1/6 of columns."""
    nz, ny, nx = shape_zyx
    return slice(nz - 2, nz), slice(1, max(2, ny // 6)), slice(nx - max(2, nx // 6), nx - 1)


def _body(shape_zyx: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(np.arange(nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    return z, y, x


def ct_phantom(shape_zyx: tuple[int, int, int] = SHAPE_DEFAULT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Abdominal CT phantom -> (HU int16 [Z, Y, X], liver mask uint8 [Z, Y, X]) in canonical LPS+.

    Air -1000 HU, body 40 HU (+ noise), liver 60 HU on the patient's right (low x) in the middle third of the
    slices only, marker 1200 HU. Label 1 = liver.
    """
    rng = np.random.default_rng(seed)
    nz = shape_zyx[0]
    z, y, x = _body(shape_zyx)
    hu = np.full(shape_zyx, -1000.0, dtype=np.float32)
    body = (x / 0.9) ** 2 + (y / 0.8) ** 2 <= 1.0
    hu[body] = 40.0 + rng.normal(0.0, 10.0, size=int(body.sum()))
    liver = ((x + 0.4) / 0.35) ** 2 + (y / 0.4) ** 2 <= 1.0
    liver &= (z >= nz // 3) & (z < 2 * nz // 3)
    hu[liver] = 60.0
    hu[marker_box(shape_zyx)] = MARKER_HU
    return np.round(hu).astype(np.int16), liver.astype(np.uint8)


def mr_phantom(shape_zyx: tuple[int, int, int] = (8, 40, 48), scale: float = 500.0, seed: int = 0) -> np.ndarray:
    """MR-like phantom (arbitrary units, int16 [Z, Y, X]); a head ellipse only in the middle slices, so the
    first and last slices are empty; marker in the anterior-left-superior corner. `scale` varies contrast."""
    rng = np.random.default_rng(seed)
    nz = shape_zyx[0]
    z, y, x = _body(shape_zyx)
    volume = np.zeros(shape_zyx, dtype=np.float32)
    head = ((x / 0.7) ** 2 + (y / 0.8) ** 2 <= 1.0) & (z >= 1) & (z < nz - 3)
    volume[head] = scale * (0.6 + 0.1 * rng.random(int(head.sum())))
    volume[marker_box(shape_zyx)] = scale * 1.5
    return np.round(volume).astype(np.int16)


# ---------------------------------------------------------------------------------------------------------------
# writers: canonical [Z, Y, X] (or [C, Z, Y, X]) -> file in a non-canonical storage order


def write_nifti_ras(path: str | Path, canonical: np.ndarray, spacing_xyz=SPACING_XYZ, origin_xyz=ORIGIN_XYZ) -> Path:
    """Write canonical [Z, Y, X] or [C, Z, Y, X] as NIfTI stored [I, J, K(, C)] in RAS+ voxel order."""
    import nibabel as nib

    spatial = canonical if canonical.ndim == 3 else np.moveaxis(canonical, 0, -1)  # [Z, Y, X(, C)]
    ras = np.flip(spatial, axis=(1, 2))  # x towards Right, y towards Anterior
    ras = np.ascontiguousarray(np.swapaxes(ras, 0, 2) if ras.ndim == 3 else ras.transpose(2, 1, 0, 3))
    nz, ny, nx = spatial.shape[:3]
    sx, sy, sz = spacing_xyz
    ox, oy, oz = origin_xyz
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = [-(ox + (nx - 1) * sx), -(oy + (ny - 1) * sy), oz]
    image = nib.Nifti1Image(ras, affine)
    image.header.set_xyzt_units("mm", "sec")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_metaimage_lpi(path: str | Path, canonical: np.ndarray, spacing_xyz=SPACING_XYZ, origin_xyz=ORIGIN_XYZ):
    """Write canonical [Z, Y, X] as MetaImage (.mhd + .raw) with slices stored superior first (k towards I)."""
    import SimpleITK as sitk

    nz = canonical.shape[0]
    image = sitk.GetImageFromArray(np.ascontiguousarray(canonical[::-1]))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin((origin_xyz[0], origin_xyz[1], origin_xyz[2] + (nz - 1) * spacing_xyz[2]))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=False)
    return path


def write_dicom_series(
    folder: str | Path,
    hu: np.ndarray,
    spacing_xyz=SPACING_XYZ,
    origin_xyz=ORIGIN_XYZ,
    patient_name: str = "Phantom^Anonymous",
    patient_id: str = "PHANTOM",
    modality: str = "CT",
) -> Path:
    """Write canonical HU [Z, Y, X] as one CT DICOM file per slice, rows running towards the patient's Right."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    sx, sy, sz = spacing_xyz
    ox, oy, oz = origin_xyz
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    stored = (np.asarray(hu, dtype=np.int32) + 1024).clip(0, 4095).astype(np.uint16)
    for z in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.Modality = patient_name, patient_id, modality
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.InstanceNumber = nz - z
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [ox + (nx - 1) * sx, oy, oz + z * sz]
        ds.PixelSpacing = [sy, sx]  # row spacing, column spacing
        ds.SliceThickness = sz
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PixelData = np.ascontiguousarray(stored[z, :, ::-1]).tobytes()
        ds.save_as(folder / f"IM{nz - z:04d}.dcm", enforce_file_format=True)
    return folder


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# dataset-shaped phantoms (the layouts the manifests describe)


def write_liver_ct_phantom(root: str | Path, cases: int = 2, shape_zyx=SHAPE_DEFAULT, dicom_case: bool = True):
    """In-house liver CT layout: images/caseNN.nii.gz (+ images/caseNN/ as a DICOM series) and masks/caseNN.nii.gz.

    Returns {relative image path: canonical liver mask [Z, Y, X]} so callers can count the expected slices.
    """
    root = Path(root)
    truth = {}
    for case in range(cases):
        hu, mask = ct_phantom(shape_zyx, seed=case)
        name = f"case{case:02d}"
        if dicom_case and case == cases - 1:
            write_dicom_series(root / "images" / name, hu)
            truth[f"images/{name}"] = mask
        else:
            write_nifti_ras(root / "images" / f"{name}.nii.gz", hu)
            truth[f"images/{name}.nii.gz"] = mask
        write_nifti_ras(root / "masks" / f"{name}.nii.gz", mask)
    return truth


def write_sliver07_phantom(root: str | Path, cases: int = 2, shape_zyx=(10, 48, 64)) -> dict[str, np.ndarray]:
    """SLIVER07 training layout: liver-orig00N.mhd/.raw (HU, int16) and liver-seg00N.mhd/.raw (uint8 mask)."""
    root = Path(root)
    truth = {}
    for case in range(1, cases + 1):
        hu, mask = ct_phantom(shape_zyx, seed=case)
        write_metaimage_lpi(root / f"liver-orig{case:03d}.mhd", hu)
        write_metaimage_lpi(root / f"liver-seg{case:03d}.mhd", mask)
        truth[f"liver-orig{case:03d}.mhd"] = hu
    return truth


def write_acdc_phantom(root: str | Path, patients: int = 2, frames: int = 6, shape_zyx=(6, 40, 48)):
    """ACDC training layout: patientNNN/patientNNN_4d.nii.gz (cine [X, Y, Z, T]) and Info.cfg (ED/ES, 1-based).

    Returns {relative 4-D path: (ED frame, ES frame) 1-based}.
    """
    root = Path(root)
    truth = {}
    for patient in range(1, patients + 1):
        folder = root / f"patient{patient:03d}"
        cine = np.stack([mr_phantom(shape_zyx, scale=300.0 + 40.0 * t, seed=t) for t in range(frames)])
        write_nifti_ras(folder / f"patient{patient:03d}_4d.nii.gz", cine)
        ed, es = 1, 2 + patient % (frames - 2)
        _write_text(folder / "Info.cfg", f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 170.0\nNbFrame: {frames}\n")
        truth[f"patient{patient:03d}/patient{patient:03d}_4d.nii.gz"] = (ed, es)
    return truth


def write_msd_brain_phantom(root: str | Path, cases: int = 2, shape_zyx=(8, 40, 48)) -> dict[str, np.ndarray]:
    """MSD Task01 layout: imagesTr/BRATS_NNN.nii.gz, 4 channels (FLAIR, T1w, T1-Gd, T2w) as the 4th axis.

    Channel c has intensity scale 100 * (c + 1), so the T1-Gd channel (index 2) is recognisable. Returns
    {relative path: canonical T1-Gd [Z, Y, X]}. A macOS '._' shadow file is added, as in the real tarball.
    """
    root = Path(root)
    truth = {}
    for case in range(1, cases + 1):
        channels = np.stack([mr_phantom(shape_zyx, scale=100.0 * (c + 1), seed=case) for c in range(4)])
        write_nifti_ras(root / "imagesTr" / f"BRATS_{case:03d}.nii.gz", channels)
        truth[f"imagesTr/BRATS_{case:03d}.nii.gz"] = channels[2]
    _write_text(root / "imagesTr" / "._BRATS_001.nii.gz", "AppleDouble")
    return truth


def write_chestxray_phantom(root: str | Path, count: int = 3, size: int = 1024) -> list[str]:
    """ChestX-ray14 layout: images/000000NN_000.png, 8-bit grayscale, `size` x `size`; returns relative names."""
    from medgan_core.utils.io import save_png

    root = Path(root)
    names = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for index in range(count):
        lungs = (((xx - 0.3) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 <= 1) | (
            ((xx - 0.7) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 <= 1
        )
        image = np.where(lungs, 40, 180 + index).astype(np.uint8)
        image[size // 16 : size // 8, -size // 8 : -size // 16] = 255  # marker: top right as stored
        name = f"images/{index + 1:08d}_000.png"
        save_png(image, root / name)
        names.append(name)
    return names
