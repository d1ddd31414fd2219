import zlib

import numpy as np
import pytest
from PIL import Image

from medgan_core.utils.io import atomic_write, parse_int_list, png_bytes, save_png


def _chunk_types(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, types = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(chunk_type + body) == crc
        types.append(chunk_type)
        pos += 12 + length
    return types


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3)])
def test_png_round_trip_without_metadata(tmp_path, shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = save_png(image, tmp_path / "a.png")
    data = path.read_bytes()
    assert set(_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}
    back = np.asarray(Image.open(path))
    np.testing.assert_array_equal(back, image.squeeze(-1) if shape[-1] == 1 else image)
    assert png_bytes(image) == data  # deterministic bytes


def test_png_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        png_bytes(np.zeros((2, 2), dtype=np.float32))


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_parse_int_list():
    assert parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_int_list("5") == [5]
    with pytest.raises(ValueError):
        parse_int_list("4-2")
