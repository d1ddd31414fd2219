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
BODY_MAX_HU = 210.0  # no body voxel is brighter: 8-bit 255 in the liver window (top 225 HU) is the marker
SHAPE_DEFAULT = (12, 48, 64)  # [Z, Y, X] of the CT phantoms


def marker_box(shape_zyx: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Canonical [Z, Y, X] block of the marker: top 2 slices, first 1/6 of rows, last 1/6 of columns."""
    nz, ny, nx = shape_zyx
    return slice(nz - 2, nz), slice(1, max(2, ny // 6)), slice(nx - max(2, nx // 6), nx - 1)


def _body(shape_zyx: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(np.arange(nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    return z, y, x


def _ellipse(x, y, cx, cy, ax, ay, angle=0.0):
    """Inside of an ellipse centred (cx, cy) with semi-axes (ax, ay), rotated by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def _profile(f: float, low: float, high: float) -> float:
    """0..1 size of an organ spanning heights low..high (fractions of the volume), largest in the middle."""
    if not low < f < high:
        return 0.0
    return float(np.sqrt(1.0 - ((2.0 * f - low - high) / (high - low)) ** 2))


def ct_case(seed: int) -> dict:
    """The seeded anatomy of one CT phantom case: body size, fat, organ positions and extents (fractions)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    return dict(
        body=(u(0.74, 0.93), u(0.56, 0.74)), fat=u(0.05, 0.13), angle=u(-0.25, 0.25),
        liver=(u(-0.42, -0.3), u(-0.12, 0.02), u(0.3, 0.4), u(0.34, 0.46)), liver_z=(u(0.18, 0.32), u(0.62, 0.8)),
        spleen=(u(0.38, 0.5), u(0.15, 0.3)), spleen_z=(u(0.4, 0.55), u(0.85, 0.95)),
        kidney_z=(u(0.0, 0.1), u(0.45, 0.6)), kidney_x=u(0.26, 0.36), aorta=u(-0.02, 0.1),
        gas=[(u(0.0, 0.45), u(-0.45, -0.1), u(0.04, 0.1)) for _ in range(rng.integers(1, 4))],
        contrast=u(110.0, 170.0),
    )  # fmt: skip


def ct_slice(case: dict, f: float, x: np.ndarray, y: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """One axial slice of a case at height f (0 inferior .. 1 superior) -> (HU float [Y, X], liver bool [Y, X])."""
    bx, by = case["body"]
    grow = 1.0 + 0.06 * (f - 0.5)
    body = _ellipse(x, y, 0.0, 0.05, bx * grow, by * grow)
    inner = _ellipse(x, y, 0.0, 0.05, bx * grow - case["fat"], by * grow - case["fat"])
    hu = np.full(x.shape, -1000.0)
    hu[body] = -100.0  # subcutaneous fat
    hu[inner] = 35.0  # muscle, bowel and mesentery
    spine_y = 0.05 + 0.62 * by
    hu[_ellipse(x, y, 0.0, spine_y + 0.02, 0.24, 0.1) & inner] = 55.0  # paraspinal muscles
    for side in (-1, 1):  # kidneys: enhancing cortex around a darker medulla
        size = _profile(f, *case["kidney_z"])
        if size:
            kx, ky = side * case["kidney_x"], spine_y - 0.12
            hu[_ellipse(x, y, kx, ky, 0.09 * size, 0.13 * size, side * 0.4) & inner] = case["contrast"] + 20.0
            hu[_ellipse(x, y, kx, ky, 0.045 * size, 0.07 * size, side * 0.4) & inner] = 70.0
    size = _profile(f, *case["spleen_z"])
    if size:
        sx, sy = case["spleen"]
        hu[_ellipse(x, y, sx, sy, 0.12 * size, 0.2 * size, 0.6) & inner] = 45.0
    for gx, gy, gr in case["gas"]:  # bowel and stomach gas, anterior
        hu[_ellipse(x, y, gx, gy + 0.05 * np.sin(6.0 * f), gr, 0.7 * gr) & inner] = -900.0
    size = _profile(f, *case["liver_z"])
    liver = np.zeros(x.shape, dtype=bool)
    if size:
        lx, ly, ax, ay = case["liver"]
        liver = _ellipse(x, y, lx, ly, ax * size, ay * size, case["angle"]) & inner
        hu[liver] = 60.0
    hu[_ellipse(x, y, case["aorta"], spine_y - 0.18, 0.045, 0.045)] = case["contrast"]  # aorta
    hu[_ellipse(x, y, 0.0, spine_y, 0.085, 0.075)] = 200.0  # vertebral body: cortical bone (kept under 225 HU)
    hu[_ellipse(x, y, 0.0, spine_y, 0.065, 0.055)] = 150.0  # cancellous bone
    hu[_ellipse(x, y, 0.0, spine_y + 0.13, 0.035, 0.035)] = 20.0  # spinal canal
    hu[body] += rng.normal(0.0, 6.0, size=int(body.sum()))
    return np.minimum(hu, BODY_MAX_HU), liver


def ct_phantom(shape_zyx: tuple[int, int, int] = SHAPE_DEFAULT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Abdominal CT phantom -> (HU int16 [Z, Y, X], liver mask uint8 [Z, Y, X]) in canonical LPS+.

    An axial slab of a seeded body (`ct_case(seed)`: size, fat, organ positions and extents vary with the seed):
    air -1000 HU, subcutaneous fat -100, muscle and bowel 35, spleen 45, liver 60 on the patient's right (low x)
    in a seeded middle range of slices, contrast-enhanced aorta and kidney cortex 110..190, bone 150/200, bowel
    gas -900, Gaussian noise (SD 6 HU) in the body, all at most `BODY_MAX_HU` (under the liver window's top,
    225 HU, so that only the 1200 HU marker reaches 255 there). Label 1 = liver. Same seed, same phantom.
    """
    rng = np.random.default_rng(seed + 1_000_003)
    nz, ny, nx = shape_zyx
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    case = ct_case(seed)
    hu = np.empty(shape_zyx, dtype=np.float32)
    mask = np.zeros(shape_zyx, dtype=np.uint8)
    for z in range(nz):
        hu[z], liver = ct_slice(case, (z + 0.5) / nz, x, y, rng)
        mask[z] = liver
    hu[marker_box(shape_zyx)] = MARKER_HU
    return np.round(hu).astype(np.int16), mask


def cardiac_phantom(shape_zyx: tuple[int, int, int] = (6, 40, 48), phase: float = 0.0, scale: float = 400.0,
                    seed: int = 0) -> np.ndarray:  # fmt: skip
    """Short-axis cine MR phantom at cardiac `phase` (0 end-diastole .. 0.35 end-systole .. 1), int16 [Z, Y, X].

    Bright blood (left and right ventricles), a darker myocardial ring that thickens as the ventricle contracts,
    dark lungs either side, liver below, subcutaneous fat, a seeded body and heart position; slices run from the
    apex (z = 0, small ventricle) to the base. Marker (1.5 x `scale`) in the anterior-left-superior corner.
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform
    nz, ny, nx = shape_zyx
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    bx, by, hx, hy = u(0.82, 0.95), u(0.62, 0.78), u(0.02, 0.14), u(-0.12, 0.02)
    squeeze = 1.0 - 0.35 * np.sin(np.pi * min(max(phase, 0.0), 0.7) / 0.7)  # ventricle radius factor
    volume = np.zeros(shape_zyx, dtype=np.float32)
    for z in range(nz):
        f = (z + 0.5) / nz
        level = 0.55 + 0.45 * f  # the ventricle widens from apex to base
        s = np.zeros((ny, nx), dtype=np.float32)
        body = _ellipse(x, y, 0, 0.05, bx, by)
        s[body] = 0.75  # subcutaneous fat
        s[_ellipse(x, y, 0, 0.05, bx - 0.08, by - 0.08)] = 0.35  # muscle
        for side in (-1, 1):
            s[_ellipse(x, y, side * 0.45, 0.05, 0.3, 0.5 * by) & body] = 0.05  # lungs
        s[_ellipse(x, y, -0.35, 0.5 * by, 0.35, 0.22) & body & (f < 0.4)] = 0.3  # liver under the heart
        outer = 0.3 * level * (squeeze + 0.35) / 1.35 + 0.06
        s[_ellipse(x, y, hx, hy, outer + 0.06, outer + 0.04)] = 0.65  # pericardial fat
        s[_ellipse(x, y, hx, hy, outer + 0.02, outer)] = 0.2  # myocardium
        s[_ellipse(x, y, hx, hy, 0.22 * level * squeeze, 0.2 * level * squeeze)] = 0.9  # left ventricle
        s[_ellipse(x, y, hx - outer - 0.08, hy - 0.03, 0.1 * level * squeeze + 0.02, 0.2 * level, 0.5) & body] = 0.85
        s[_ellipse(x, y, 0.0, by - 0.05, 0.08, 0.07)] = 0.15  # spine
        s[body] += rng.normal(0.0, 0.03, size=int(body.sum()))
        volume[z] = scale * np.clip(s, 0.0, 1.0)
    volume[marker_box(shape_zyx)] = scale * 1.5
    return np.round(volume).astype(np.int16)


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
        cine = np.stack(
            [cardiac_phantom(shape_zyx, t / frames, 300.0 + 40.0 * t, seed=patient) for t in range(frames)]
        )
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
