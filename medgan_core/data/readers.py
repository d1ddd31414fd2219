"""Medical image readers: NIfTI, DICOM (single files and series), MetaImage and PNG.

Every reader returns ``(array, meta)`` like MONAI's loaders:

- volumes (NIfTI, DICOM, MetaImage): ``[Z, Y, X]`` in the canonical LPS+ orientation (see
  `medgan_core.data.orientation`: Z towards superior, Y towards posterior, X towards the patient's left);
  4-D NIfTI (MSD channels, ACDC cine frames): ``[C, Z, Y, X]`` with ``meta.channel_axis == 0``;
  a 2-D DICOM without geometry (a radiograph) comes back as ``[1, Y, X]`` as stored (row 0 at the top);
- PNG: ``[H, W]`` (grayscale) or ``[H, W, C]`` as stored.

DICOM pixel values go through the modality LUT (RescaleSlope/RescaleIntercept: CT in Hounsfield units) and
MONOCHROME1 images are inverted so that higher values are always brighter. `ImageMeta` never carries patient
identifiers, nor the file's path. Odd but harmless input (a README.txt in a DICOM series folder) is skipped with
a `DataWarning` naming the file; the prep pipeline turns these into notes in its summary.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medgan_core.data.orientation import (
    Geometry,
    orient_voxels,
    orientation_code,
    ras_affine_to_lps,
)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
METAIMAGE_SUFFIXES = (".mhd", ".mha")
DICOM_SUFFIXES = (".dcm", ".dicom")
PNG_SUFFIXES = (".png",)


class ReadError(ValueError):
    """A file that cannot be read as a medical image; the message names the file and the reason."""


class DataWarning(UserWarning):
    """Input that is odd but does not stop the work (a skipped file, a mask without its label); names the file."""

    def __init__(self, path: str | Path, text: str):
        super().__init__(f"{path}: {text}")
        self.path = Path(path)


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """What a reader knows about an image besides its pixels (no patient identifiers, ever).

    spacing_mm follows the spatial array axes: (z, y, x) for volumes, (y, x) for PNG. origin_lps_mm is the
    LPS+ position (mm) of voxel [0, 0, 0] after reorientation; direction is the 3x3 row-major matrix whose
    columns are the LPS+ directions of the x, y, z array axes. orientation is 'LPS' once canonical, or None
    when the file carries no geometry (radiographs, PNG), in which case pixels stay as stored.
    """

    format: str
    shape: tuple[int, ...]
    spacing_mm: tuple[float, ...]
    origin_lps_mm: tuple[float, float, float] | None = None
    direction: tuple[float, ...] | None = None
    orientation: str | None = None
    source_orientation: str | None = None
    modality: str | None = None
    is_hu: bool = False
    channel_axis: int | None = None
    photometric: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def read_image(path: str | Path, modality: str | None = None, reorient: str = "canonical"):
    """Read any supported file (or a DICOM series folder); dispatches on the suffix. Returns (array, meta).

    reorient (NIfTI, MetaImage, NRRD): 'canonical' (LPS+, the default), 'in-plane' (keep the stored slice axis,
    orient rows and columns; for acquisition stacks such as cardiac short axis) or 'none' (stored [K, J, I]).
    """
    path = Path(path)
    if path.is_dir():
        return read_dicom(path)
    if _has_suffix(path, NIFTI_SUFFIXES):
        return read_nifti(path, modality=modality, reorient=reorient)
    if _has_suffix(path, METAIMAGE_SUFFIXES):
        return read_metaimage(path, modality=modality, reorient=reorient)
    if _has_suffix(path, (".nrrd",)):  # masks exported from 3D Slicer
        return _read_itk(path, "nrrd", modality, reorient)
    if _has_suffix(path, DICOM_SUFFIXES):
        return read_dicom(path)
    if _has_suffix(path, PNG_SUFFIXES):
        return read_png(path)
    expected = ".nii, .nii.gz, .mhd, .mha, .nrrd, .dcm, .png or a DICOM folder"
    raise ReadError(f"{path}: unknown image format (expected {expected})")


# ---------------------------------------------------------------------------------------------------------------
# ITK-backed formats: MetaImage and NRRD (NIfTI is read with nibabel, below)


def _canonical_volume(image: sitk.Image, reorient: str = "canonical") -> tuple[np.ndarray, Geometry]:
    voxels = sitk.GetArrayFromImage(image)
    return orient_voxels(voxels, image.GetSpacing(), image.GetOrigin(), image.GetDirection(), _mode(reorient))


def _mode(reorient) -> str:
    """YAML booleans are accepted too: true -> 'canonical', false -> 'none'."""
    if reorient is True:
        return "canonical"
    return "none" if reorient is False else str(reorient)


def _volume_meta(geometry: Geometry, source_code: str, fmt: str, modality, shape, channel_axis=None) -> ImageMeta:
    sx, sy, sz = geometry.spacing_xyz
    return ImageMeta(
        format=fmt,
        shape=tuple(int(s) for s in shape),
        spacing_mm=(float(sz), float(sy), float(sx)),
        origin_lps_mm=tuple(float(o) for o in geometry.origin_xyz),
        direction=tuple(float(d) for d in geometry.direction),
        orientation=orientation_code(geometry.direction),
        source_orientation=source_code,
        modality=modality,
        is_hu=modality == "CT",
        channel_axis=channel_axis,
    )


def _read_itk(path: Path, fmt: str, modality, reorient: str = "canonical"):
    if not path.is_file():
        raise ReadError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise ReadError(f"{path}: cannot read {fmt} ({first_line[:200]})") from None
    dimension = image.GetDimension()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ReadError(f"{path}: vector pixels are not supported (store channels as a 4th axis)")
    if dimension == 3:
        source_code = orientation_code(image.GetDirection())
        array, geometry = _canonical_volume(image, reorient)
        return array, _volume_meta(geometry, source_code, fmt, modality, array.shape)
    if dimension == 4:
        size = list(image.GetSize())
        volumes, geometry = [], None
        for index in range(size[3]):
            volume = sitk.Extract(image, size[:3] + [0], [0, 0, 0, index])  # [X, Y, Z] of channel/frame `index`
            source_code = orientation_code(volume.GetDirection())
            array, geometry = _canonical_volume(volume, reorient)
            volumes.append(array)
        stacked = np.stack(volumes)  # [C, Z, Y, X]
        return stacked, _volume_meta(geometry, source_code, fmt, modality, stacked.shape, 0)
    raise ReadError(f"{path}: expected a 3-D or 4-D volume, got {dimension}-D")


def read_nifti(path: str | Path, modality: str | None = None, reorient: str = "canonical"):
    """NIfTI-1/2 (.nii, .nii.gz) -> ([Z, Y, X] or [C, Z, Y, X] canonical LPS+, meta).

    Read with nibabel (its sform/qform choice; scl_slope/scl_inter applied; a truncated file is an error, where
    ITK would fill the missing voxels silently) and reoriented like every other format.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path}: file not found")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj)  # [I, J, K(, T)]
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise ReadError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {str(exc)[:160]})") from None
    if data.ndim == 5 and data.shape[3] == 1:  # [I, J, K, 1, C] vector-valued storage
        data = data[:, :, :, 0, :]
    if data.ndim not in (3, 4):
        raise ReadError(f"{path}: expected a 3-D or 4-D volume, got {data.ndim}-D {data.shape}")
    spacing, origin, direction = ras_affine_to_lps(image.affine)
    source_code = orientation_code(direction)
    volumes = [data.T] if data.ndim == 3 else [data[..., t].T for t in range(data.shape[3])]  # [K, J, I] each
    arrays = []
    for voxels in volumes:
        array, geometry = orient_voxels(voxels, spacing, origin, direction, _mode(reorient))
        arrays.append(array)
    array = arrays[0] if data.ndim == 3 else np.stack(arrays)
    return array, _volume_meta(geometry, source_code, "nifti", modality, array.shape, None if data.ndim == 3 else 0)


def read_metaimage(path: str | Path, modality: str | None = None, reorient: str = "canonical"):
    """MetaImage (.mhd + .raw, or .mha) -> ([Z, Y, X] canonical LPS+, meta). SLIVER07 stores CT in HU."""
    path = Path(path)
    if path.suffix.lower() == ".mhd" and path.is_file():
        _check_metaimage_data(path)
    return _read_itk(path, "metaimage", modality, reorient)


_MET_BYTES = {
    "MET_UCHAR": 1,
    "MET_CHAR": 1,
    "MET_USHORT": 2,
    "MET_SHORT": 2,
    "MET_UINT": 4,
    "MET_INT": 4,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
    "MET_ULONG_LONG": 8,
    "MET_LONG_LONG": 8,
}


def _metaimage_fields(header_path: Path) -> dict[str, str]:
    fields = {}
    for line in header_path.read_text(encoding="latin-1").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _metaimage_data_file(fields: dict[str, str]) -> str | None:
    """The single data file an .mhd header names (None for LOCAL data, file lists and patterns)."""
    data_file = fields.get("elementdatafile", "")
    if not data_file or data_file.upper() in ("LOCAL", "LIST") or "%" in data_file:
        return None
    return data_file


def input_files(path: str | Path) -> list[Path]:
    """Every file `read_image(path)` reads: a DICOM folder's files, an .mhd header and its data file, or `path`."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if _has_suffix(path, (".mhd",)) and path.is_file():
        data_file = _metaimage_data_file(_metaimage_fields(path))
        if data_file and (path.parent / data_file).is_file():
            return [path, path.parent / data_file]
    return [path]


def _check_metaimage_data(header_path: Path) -> None:
    """Name a missing or truncated .raw beside an .mhd header (ITK reports both as 'No such file')."""
    fields = _metaimage_fields(header_path)
    data_file = _metaimage_data_file(fields)
    if data_file is None:
        return
    raw = header_path.parent / data_file
    if not raw.is_file():
        raise ReadError(f"{header_path}: its data file {data_file} is missing")
    compressed = fields.get("compresseddata", "false").lower() == "true"
    item = _MET_BYTES.get(fields.get("elementtype", ""))
    try:
        dims = [int(v) for v in fields.get("dimsize", "").split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except ValueError:
        return
    if compressed or item is None or not dims:
        return
    expected = int(np.prod(dims)) * item * channels + int(fields.get("headersize", "0") or 0)
    if raw.stat().st_size < expected:
        raise ReadError(f"{raw}: {raw.stat().st_size:,} bytes, expected {expected:,} (truncated?)")


# ---------------------------------------------------------------------------------------------------------------
# DICOM (pydicom): single files and series


def _dicom_pixels(ds, path: Path) -> np.ndarray:
    """Stored pixels -> modality values (HU for CT), MONOCHROME1 inverted; float32 [frames or 1, rows, cols]."""
    from pydicom.pixels import apply_modality_lut

    try:
        stored = ds.pixel_array
    except Exception as exc:  # truncated data, missing decoder, ...
        raise ReadError(f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {str(exc)[:160]})") from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if getattr(ds, "SamplesPerPixel", 1) != 1:
        raise ReadError(f"{path}: colour DICOM (SamplesPerPixel={ds.SamplesPerPixel}) is not a grayscale scan")
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        bits = int(getattr(ds, "BitsStored", 16))
        signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ends = np.asarray(apply_modality_lut(np.array([low, high]), ds), dtype=np.float32)
        values = ends.min() + ends.max() - values  # mirror the representable range: white <-> black
    return values.reshape(frames, values.shape[-2], values.shape[-1])


def _has_dicom_marker(path: Path) -> bool:
    """True when the file carries 'DICM' after its 128-byte preamble, as every DICOM (PS3.10) file does."""
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def _dicom_files(folder: Path) -> list[Path]:
    """The DICOM files of a series folder. Other files (README.txt, thumbnails) are skipped with a DataWarning;
    a file named .dcm or .dicom is always kept, so that a damaged one fails with its name."""
    candidates = (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "DICOMDIR")
    files, skipped = [], []
    for file in sorted(candidates):
        (files if _has_suffix(file, DICOM_SUFFIXES) or _has_dicom_marker(file) else skipped).append(file)
    if skipped:
        names = ", ".join(p.relative_to(folder).as_posix() for p in skipped[:5]) + (", ..." * (len(skipped) > 5))
        warnings.warn(DataWarning(folder, f"skipped {len(skipped)} non-DICOM file(s): {names}"), stacklevel=3)
    if not files:
        raise ReadError(f"{folder}: folder holds no DICOM files ({len(skipped)} other files)")
    return files


def _load_datasets(files: list[Path]):
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for file in files:
        try:
            datasets.append(pydicom.dcmread(file))
        except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
            raise ReadError(f"{file}: not a readable DICOM file ({type(exc).__name__})") from None
    return datasets


def read_dicom(path: str | Path):
    """A DICOM file or a folder holding one series -> ([Z, Y, X] float32, meta).

    Slices are sorted along the slice normal by ImagePositionPatient and reoriented to canonical LPS+. A file
    without geometry (e.g. a radiograph) is returned as stored, ``[1, rows, cols]``, with orientation None.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(f"{path}: not found")
    files = _dicom_files(path) if path.is_dir() else [path]
    datasets = _load_datasets(files)
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise ReadError(f"{path}: {len(series)} DICOM series in one folder; give each series its own folder")
    first = datasets[0]
    modality = str(getattr(first, "Modality", "")) or None
    photometric = str(getattr(first, "PhotometricInterpretation", "")) or None
    pixels = [_dicom_pixels(ds, file) for ds, file in zip(datasets, files)]
    if len({p.shape[1:] for p in pixels}) > 1:
        raise ReadError(f"{path}: DICOM slices differ in size")
    rescale_type = str(getattr(first, "RescaleType", "HU") or "HU")
    is_hu = modality == "CT" and rescale_type.upper() == "HU"

    has_geometry = all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets)
    if not has_geometry or len(pixels[0]) > 1:
        if len(datasets) > 1:
            raise ReadError(f"{path}: DICOM series without ImagePositionPatient/ImageOrientationPatient")
        array = pixels[0]
        spacing = getattr(first, "PixelSpacing", None) or getattr(first, "ImagerPixelSpacing", None) or [1.0, 1.0]
        row_mm, col_mm = (float(s) or 1.0 for s in spacing)
        meta = ImageMeta(
            format="dicom",
            shape=tuple(array.shape),
            spacing_mm=(1.0, row_mm, col_mm),
            modality=modality,
            is_hu=is_hu,
            photometric=photometric,
        )
        return array, meta

    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    order = np.argsort(positions @ normal, kind="stable")
    distances = (positions @ normal)[order]
    if len(distances) > 1:
        gaps = np.diff(distances)
        if np.any(gaps <= 1e-4):
            raise ReadError(f"{path}: two DICOM slices share one position (duplicate or mixed series)")
        if gaps.max() - gaps.min() > 0.1 * gaps.mean():
            raise ReadError(
                f"{path}: uneven DICOM slice spacing {gaps.min():.2f}..{gaps.max():.2f} mm (missing slices?)"
            )
        slice_mm = float(gaps.mean())
    else:
        slice_mm = float(getattr(first, "SpacingBetweenSlices", 0) or getattr(first, "SliceThickness", 0) or 1.0)
    volume = np.concatenate([pixels[i] for i in order])  # [K, rows, cols]
    row_mm, col_mm = (float(s) for s in first.PixelSpacing)
    direction = tuple(np.stack([row_dir, col_dir, normal], axis=1).ravel())  # columns: i (col), j (row), k in LPS+
    array, geometry = orient_voxels(volume, (col_mm, row_mm, slice_mm), tuple(positions[order[0]]), direction)
    meta = _volume_meta(geometry, orientation_code(direction), "dicom", modality, array.shape)
    return array, dataclasses.replace(meta, is_hu=is_hu, photometric=photometric)


# ---------------------------------------------------------------------------------------------------------------
# PNG


def read_png(path: str | Path):
    """PNG -> ([H, W] or [H, W, C] as stored: uint8 or uint16, meta). Palette images are expanded to RGB(A)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            array = np.array(image)
            mode = image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReadError(f"{path}: cannot read PNG ({type(exc).__name__}: {str(exc)[:160]})") from None
    meta = ImageMeta(
        format="png",
        shape=tuple(array.shape),
        spacing_mm=(1.0, 1.0),
        photometric=mode,
    )
    return array, meta
