"""Real medical files that ship with PyPI packages, found offline.

- nilearn: the MNI152 2009a symmetric T1 template (197 x 233 x 189 voxels, 1 mm, uint8 0..255, RAS+ NIfTI);
- pydicom (and pydicom-data): small real DICOM files, e.g. CT_small.dcm (128 x 128 CT, HU via rescale),
  MR_small.dcm (64 x 64 MR) and RG1_UNCI.dcm (1955 x 1841 computed radiograph, MONOCHROME1).

Sources are named "package:file" in the manifests (e.g. "pydicom:CT_small.dcm"); `resolve` turns such a name
into a local path without touching the network, and says which package to install when it cannot.
"""

from __future__ import annotations

from pathlib import Path

MNI152_T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def mni152_t1_path() -> Path:
    """Path of nilearn's packaged MNI152 T1 template (the `mni-brain` recipe's source)."""
    try:
        import nilearn
    except ImportError as exc:
        raise FileNotFoundError("the MNI152 template ships with nilearn: pip install nilearn") from exc
    path = Path(nilearn.__file__).parent / "datasets" / "data" / MNI152_T1_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nilearn {nilearn.__version__} does not ship the MNI152 T1 template")
    return path


def pydicom_file(name: str) -> Path:
    """Path of a pydicom test file (core package or pydicom-data), never downloading."""
    import warnings

    try:
        from pydicom.data import get_testdata_file
    except ImportError as exc:
        raise FileNotFoundError(f"{name} ships with pydicom: pip install pydicom pydicom-data") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about unreachable download sources
        found = get_testdata_file(name, download=False)
    if not found:
        raise FileNotFoundError(f"pydicom test file {name} not found locally: pip install pydicom-data")
    return Path(found)


def resolve(source: str) -> Path:
    """'nilearn:<file>' or 'pydicom:<file>' -> local path."""
    package, _, name = source.partition(":")
    if package == "nilearn" and name == MNI152_T1_FILE:
        return mni152_t1_path()
    if package == "pydicom" and name:
        return pydicom_file(name)
    raise ValueError(f"unknown embedded source {source!r} (expected nilearn:{MNI152_T1_FILE} or pydicom:<file>)")
