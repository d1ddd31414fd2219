import errno
import os
import zlib

import numpy as np
import pytest
from PIL import Image

from medgan_core.utils.io import (
    DiskFault,
    append_whole,
    atomic_write,
    parse_int_list,
    png_bytes,
    save_png,
    write_whole,
)
from tests.utils.small_fs import small_filesystem


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


def test_a_full_disk_is_one_error_naming_the_file_and_the_bytes_and_leaves_nothing(tmp_path, monkeypatch):
    data = os.urandom(3 << 20)  # 3 MiB on a 2 MiB filesystem (random: nothing compresses it)
    with small_filesystem(tmp_path / "small", "2m") as small:
        if small is None:  # no mount here: the disk fills at the fsync (as NFS reports it)
            small = tmp_path / "small"
            monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
        (small / "kept.txt").write_text("before")
        with pytest.raises(DiskFault) as fault:
            write_whole(small / "big.bin", data)
        assert fault.value.errno == errno.ENOSPC and fault.value.path == small / "big.bin"
        message = str(fault.value)
        assert f"cannot write {small / 'big.bin'}" in message and f"needed {len(data)} bytes" in message
        assert sorted(p.name for p in small.iterdir()) == ["kept.txt"]  # no temporary, no partial file


def test_another_files_error_inside_the_block_stays_what_it_is(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_write(tmp_path / "out.bin") as f:
            f.write(b"x")
            raise PermissionError(errno.EACCES, "Permission denied", "/some/source.png")


def test_a_line_that_fails_part_way_is_cut_back_off(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_bytes(b'{"tick": 0}\n')

    class HalfThenFull:  # an unbuffered file whose disk fills in the middle of a line
        def __init__(self, file):
            self.file, self.calls = file, 0

        def fileno(self):
            return self.file.fileno()

        def write(self, data):
            self.calls += 1
            if self.calls > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(bytes(data[:5]))

    with open(path, "ab", buffering=0) as file:
        with pytest.raises(DiskFault, match=r"stats\.jsonl: No space left on device \(needed 12 bytes"):
            append_whole(HalfThenFull(file), b'{"tick": 1}\n', path)
        append_whole(file, b'{"tick": 2}\n', path)
    assert path.read_bytes() == b'{"tick": 0}\n{"tick": 2}\n'


def test_parse_int_list():
    assert parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_int_list("5") == [5]
    with pytest.raises(ValueError):
        parse_int_list("4-2")
