"""Readers: one canonical orientation for NIfTI, MetaImage, DICOM series and 4-D NIfTI; HU; MONOCHROME1."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from medgan_core.data import phantoms
from medgan_core.data.embedded import pydicom_file
from medgan_core.data.readers import DataWarning, ReadError, read_image

SHAPE = (12, 48, 64)  # [Z, Y, X]: non-square in-plane, so a transposition would change the shape


@pytest.fixture(scope="module")
def phantom():
    hu, _ = phantoms.ct_phantom(SHAPE)
    return hu


def _assert_marker_top_right_of_top_slices(volume):
    """The anterior-left-superior marker: last slices, top rows, right-hand columns (radiological view)."""
    top = volume[-1]
    ys, xs = np.nonzero(top >= phantoms.MARKER_HU - 1)
    assert ys.size > 0, "marker missing from the most superior slice"
    assert ys.max() < top.shape[0] / 4 and xs.min() > 3 * top.shape[1] / 4
    assert not (volume[0] >= phantoms.MARKER_HU - 1).any(), "marker found at the inferior end: z is flipped"


@pytest.mark.parametrize("fmt", ["nifti", "metaimage", "dicom"])
def test_every_format_gives_the_same_canonical_slices(tmp_path, phantom, fmt):
    if fmt == "nifti":
        path = phantoms.write_nifti_ras(tmp_path / "ct.nii.gz", phantom)
    elif fmt == "metaimage":
        path = phantoms.write_metaimage_lpi(tmp_path / "ct.mhd", phantom)
    else:
        path = phantoms.write_dicom_series(tmp_path / "series", phantom)
    array, meta = read_image(path)
    assert array.shape == SHAPE
    np.testing.assert_array_equal(array, phantom)
    _assert_marker_top_right_of_top_slices(array)
    assert meta.orientation == "LPS"
    assert meta.source_orientation != "LPS"  # every writer stores a different voxel order
    np.testing.assert_allclose(meta.spacing_mm, phantoms.SPACING_XYZ[::-1], rtol=1e-6)
    np.testing.assert_allclose(meta.origin_lps_mm, phantoms.ORIGIN_XYZ, atol=1e-4)


def test_four_d_nifti_keeps_channels_first(tmp_path, phantom):
    channels = np.stack([phantom, phantom // 2, phantom // 3])
    path = phantoms.write_nifti_ras(tmp_path / "c.nii.gz", channels)
    array, meta = read_image(path)
    assert array.shape == (3,) + SHAPE and meta.channel_axis == 0
    np.testing.assert_array_equal(array, channels)
    _assert_marker_top_right_of_top_slices(array[0])


def test_nifti_agrees_with_nibabel_closest_canonical(tmp_path, phantom):
    import nibabel as nib

    path = phantoms.write_nifti_ras(tmp_path / "ct.nii.gz", phantom)
    ras = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)  # [R->, A->, S->] as [x, y, z]
    lps_zyx = np.flip(ras, axis=(0, 1)).transpose(2, 1, 0)
    np.testing.assert_array_equal(read_image(path)[0], lps_zyx)


def test_dicom_series_agrees_with_simpleitk_gdcm(tmp_path, phantom):
    folder = phantoms.write_dicom_series(tmp_path / "series", phantom)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = sitk.DICOMOrient(reader.Execute(), "LPS")  # GDCM applies RescaleSlope/Intercept
    array, meta = read_image(folder)
    np.testing.assert_array_equal(array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(meta.origin_lps_mm, reference.GetOrigin(), atol=1e-4)
    assert meta.is_hu and meta.modality == "CT"


def test_dicom_series_is_oriented_from_its_cosines_without_a_simpleitk_image(tmp_path, phantom, monkeypatch):
    """Issue 14: the series goes numpy -> numpy; building a SimpleITK image on the way would fail here."""

    def no_image(*args, **kwargs):
        raise AssertionError("read_dicom built a SimpleITK image")

    monkeypatch.setattr(sitk, "GetImageFromArray", no_image)
    array, meta = read_image(phantoms.write_dicom_series(tmp_path / "series", phantom))
    np.testing.assert_array_equal(array, phantom)
    # stored: columns run towards the patient's Right, rows Posterior, slices along row x column = Inferior
    assert meta.source_orientation == "RPI" and meta.orientation == "LPS"


def test_non_dicom_files_in_a_series_folder_are_skipped_with_a_note(tmp_path, phantom):
    folder = phantoms.write_dicom_series(tmp_path / "series", phantom)
    (folder / "README.txt").write_text("exported by the PACS, see the study report")
    (folder / "thumbs").mkdir()
    (folder / "thumbs" / "preview.jpg").write_bytes(b"\xff\xd8\xff\xe0 not dicom")
    with pytest.warns(DataWarning, match=r"series: skipped 2 non-DICOM file\(s\): README.txt, thumbs/preview.jpg"):
        array, _ = read_image(folder)
    np.testing.assert_array_equal(array, phantom)
    # a damaged slice that claims to be DICOM still fails the series, naming the file
    (folder / "IM0003.dcm").write_bytes(b"\0" * 40)
    with pytest.warns(DataWarning), pytest.raises(ReadError, match="IM0003.dcm: not a readable DICOM file"):
        read_image(folder)


def test_ct_small_values_are_hounsfield_units_and_meta_is_anonymous():
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)  # stored values, by hand
    array, meta = read_image(path)
    assert array.shape == (1, 128, 128) and meta.is_hu
    # single axial slice with identity orientation: canonical == stored; HU = stored * 1 - 1024
    np.testing.assert_array_equal(array[0], raw.astype(np.float32) * float(ds.RescaleSlope) + ds.RescaleIntercept)
    text = repr(meta.to_dict())
    for secret in (str(ds.PatientName), str(ds.PatientID), "CompressedSamples"):
        assert secret not in text


def _write_monochrome1(path, values, bits=12):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # computed radiography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
        "CR",
    )
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = values.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_monochrome1_is_inverted_over_the_stored_bit_range(tmp_path):
    values = np.array([[0, 100], [2000, 4095]], dtype=np.uint16)
    _write_monochrome1(tmp_path / "cr.dcm", values)
    array, meta = read_image(tmp_path / "cr.dcm")
    np.testing.assert_array_equal(array[0], 4095 - values.astype(np.float32))
    assert meta.orientation is None and meta.photometric == "MONOCHROME1"


def test_real_radiograph_rg1_is_inverted():
    path = pydicom_file("RG1_UNCI.dcm")
    ds = pydicom.dcmread(path)
    array, _ = read_image(path)
    assert array.shape == (1, 1955, 1841)
    raw = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)
    np.testing.assert_array_equal(array[0], (2 ** int(ds.BitsStored) - 1) - raw.astype(np.float32))


def test_truncated_and_foreign_files_raise_read_errors_naming_the_file(tmp_path):
    truncated = pydicom_file("MR_truncated.dcm")
    with pytest.raises(ReadError, match="MR_truncated.dcm"):
        read_image(truncated)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ReadError, match="broken.nii.gz"):
        read_image(broken)
    with pytest.raises(ReadError, match="unknown image format"):
        read_image(tmp_path / "notes.txt")


def test_png_reader_returns_pixels_as_stored(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "c.png")
    array, meta = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(array, gray)
    assert meta.format == "png" and meta.photometric == "L"
    assert read_image(tmp_path / "c.png")[0].shape == (3, 4, 4)


def test_truncated_metaimage_raw_is_named(tmp_path, phantom):
    phantoms.write_metaimage_lpi(tmp_path / "liver-orig001.mhd", phantom)
    raw = tmp_path / "liver-orig001.raw"
    raw.write_bytes(raw.read_bytes()[:1000])
    with pytest.raises(ReadError, match=r"liver-orig001.raw: 1,000 bytes, expected"):
        read_image(tmp_path / "liver-orig001.mhd")
    raw.unlink()
    with pytest.raises(ReadError, match="missing"):
        read_image(tmp_path / "liver-orig001.mhd")
