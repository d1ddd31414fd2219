"""heap_reuse: glibc's own accounting (mallinfo2) shows where a large buffer comes from inside and after the block."""

import ctypes
import os

import pytest
import torch

from medgan_core.utils import heap
from medgan_core.utils.heap import heap_reuse, heap_reuse_reason

BUFFER_MB = 96  # above glibc's largest dynamic mmap threshold (32 MiB): as is, always a fresh mmap


class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]


def mmapped_bytes_while_holding_a_buffer() -> int:
    """Bytes glibc newly holds in mmapped blocks while a fresh tensor is alive: BUFFER_MB more than the heap's free
    chunks (fordblks) hold, so that it cannot be carved from memory an earlier block left in the heap."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2()
    buffer = torch.empty(before.fordblks + BUFFER_MB * 2**20, dtype=torch.uint8)  # untouched: no pages used
    during = libc.mallinfo2().hblkhd
    del buffer
    return during - before.hblkhd


@pytest.fixture
def plain_glibc(monkeypatch):
    for key in ("MEDGAN_ALLOCATOR", "MEDGAN_HEAP_REUSE", "LD_PRELOAD"):
        monkeypatch.delenv(key, raising=False)
    for key in [k for k in os.environ if k.startswith("MALLOC_") or k.startswith("GLIBC_TUNABLES")]:
        monkeypatch.delenv(key)
    if heap._glibc() is None:
        pytest.skip("the C library is not glibc: heap_reuse is a no-op here")
    if mmapped_bytes_while_holding_a_buffer() < BUFFER_MB * 2**20:
        pytest.fail("this process was started with a tuned glibc (MALLOC_* at start-up): run the test without it")


def test_buffers_come_from_the_heap_inside_and_from_mmap_after(plain_glibc):
    with heap_reuse() as tuned:
        assert tuned is True
        assert mmapped_bytes_while_holding_a_buffer() == 0
        with heap_reuse() as nested:  # nested blocks share the setting; the inner exit keeps it
            assert nested is True
        assert mmapped_bytes_while_holding_a_buffer() == 0
    assert mmapped_bytes_while_holding_a_buffer() >= BUFFER_MB * 2**20  # glibc's defaults are back


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"MEDGAN_HEAP_REUSE": "0"}, "MEDGAN_HEAP_REUSE=0"),
        ({"MEDGAN_ALLOCATOR": "tuned"}, "--allocator tuned"),
        ({"MALLOC_MMAP_MAX_": "0"}, "MALLOC_MMAP_MAX_"),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}, "GLIBC_TUNABLES"),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "preloaded"),
    ],
)
def test_an_allocator_chosen_elsewhere_is_left_alone(plain_glibc, monkeypatch, env, reason):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert reason in heap_reuse_reason()
    with heap_reuse() as tuned:
        assert tuned is False
        assert mmapped_bytes_while_holding_a_buffer() >= BUFFER_MB * 2**20


def test_disabled_block_leaves_the_allocator_as_is(plain_glibc):
    assert heap_reuse_reason() is None
    with heap_reuse(enabled=False) as tuned:
        assert tuned is False
        assert mmapped_bytes_while_holding_a_buffer() >= BUFFER_MB * 2**20
