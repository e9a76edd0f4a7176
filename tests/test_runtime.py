"""The runtime helpers that describe where a number was made."""

from __future__ import annotations

import platform
import sys

import pytest
import torch

from dipscope.runtime import describe_device, device_in_words, machine


def test_a_recorded_device_in_words_names_bf16_and_threads() -> None:
    cpu = {"type": "cpu", "name": "Some CPU", "torch_threads": 1, "native_bf16": True}
    assert device_in_words(cpu) == "Some CPU (native bf16), 1 thread"
    assert device_in_words({**cpu, "native_bf16": False, "torch_threads": 2}) == "Some CPU (no native bf16), 2 threads"
    # a GPU or an older record without the flag says nothing about bf16; no name falls back to the type
    assert device_in_words({"type": "cuda", "name": "H200", "torch_threads": 2}) == "H200, 2 threads"
    assert device_in_words({"type": "cpu"}) == "cpu"
    assert device_in_words("cpu") == "cpu" and device_in_words(None) == "?"


def test_machine_is_this_cpu_in_the_same_words() -> None:
    words = device_in_words({**describe_device(torch.device("cpu")), "torch_threads": None})
    assert machine().startswith(words + ", ")
    assert machine().endswith(f"torch {torch.__version__}, {torch.get_num_threads()} threads")


_ALLOCATE = """
import resource, hashlib, torch
from dipscope.runtime import allocator, keep_freed_memory
print(keep_freed_memory())
torch.manual_seed(0)
w = torch.randn(4096, 256)
faults = []
for step in range(16):  # a 64 MiB product a step, freed before the next (above any mmap threshold)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    out = torch.mm(w, w.T)
    digest = hashlib.sha256(out[::97].numpy().tobytes()).hexdigest()
    del out
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(min(faults[8:]))
print(digest)
print(allocator())
"""


def _allocate(env: dict[str, str]) -> tuple[str, int, str, str]:
    """What :data:`_ALLOCATE` prints in a fresh process: the allocator applied, the fewest page
    faults of one of its last 8 steps, a digest of the last product, and the allocator recorded."""
    import os
    import subprocess

    run = subprocess.run([sys.executable, "-c", _ALLOCATE], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    applied, faults, digest, recorded = run.stdout.strip().splitlines()[-4:]
    return applied, int(faults), digest, recorded


glibc = pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                           reason="keep_freed_memory acts on glibc's malloc only")


@glibc
def test_kept_memory_is_reused_without_page_faults_and_changes_no_number() -> None:
    """A 64 MiB tensor made and freed each step: glibc maps fresh pages for it every time (16 384
    page faults a step), and, once freed memory is kept, reuses them (the heap may still grow
    once in a while, as small blocks take part of the freed hole: the quietest of 8 steps is
    compared); the product is bit-identical."""
    applied, kept_faults, kept_digest, recorded = _allocate({"DIPSCOPE_MALLOC": ""})
    assert applied == recorded == "glibc, freed memory kept"
    off, system_faults, system_digest, recorded_off = _allocate({"DIPSCOPE_MALLOC": "system"})
    assert off == recorded_off == "system"
    assert system_faults >= 16384  # every step touches fresh pages
    assert kept_faults < system_faults / 10
    assert kept_digest == system_digest


@glibc
def test_the_users_malloc_settings_win() -> None:
    applied, *_ = _allocate({"DIPSCOPE_MALLOC": "", "MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert applied == "system"
    applied, *_ = _allocate({"DIPSCOPE_MALLOC": "", "GLIBC_TUNABLES": "glibc.malloc.mmap_max=8"})
    assert applied == "system"


def test_a_cpu_device_records_its_allocator() -> None:
    from dipscope.runtime import allocator

    assert describe_device(torch.device("cpu"))["allocator"] == allocator()


def test_flushed_denormals_flush_inside_on_a_cpu_and_restore_exact_arithmetic() -> None:
    from dipscope.runtime import flushed_denormals

    tiny = torch.tensor([1e-39])  # subnormal in fp32
    cpu = torch.device("cpu")
    with flushed_denormals(True, cpu):
        flushed = (tiny * 1).item()
    assert (tiny * 1).item() > 0  # restored on leaving
    with flushed_denormals(False, cpu):
        assert (tiny * 1).item() > 0
    if torch.set_flush_denormal(False) is not False:  # the CPU can flush (x86 with SSE3)
        assert flushed == 0.0


def test_flushed_denormals_says_whether_it_flushes_and_restores_the_previous_mode() -> None:
    from dipscope.runtime import can_flush_denormals, denormals_flushed, flushed_denormals

    cpu = torch.device("cpu")
    assert not denormals_flushed()
    assert not can_flush_denormals(torch.device("cuda")) and not denormals_flushed()
    with flushed_denormals(False, cpu) as applied:
        assert applied is False
    with flushed_denormals(True, torch.device("cuda")) as applied:  # off the CPU nothing happens
        assert applied is False and not denormals_flushed()
    if not can_flush_denormals(cpu):
        pytest.skip("this CPU cannot flush subnormal floats")
    assert not denormals_flushed()  # the probe left the mode as it was
    with flushed_denormals(True, cpu) as outer:
        with flushed_denormals(True, cpu) as inner:
            assert outer and inner and denormals_flushed()
        assert denormals_flushed()  # leaving the inner context keeps the outer one's mode
    assert not denormals_flushed()
