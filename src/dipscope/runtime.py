"""Devices, precision, seeding and a description of the software/hardware for ``run.json``."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from contextlib import contextmanager, nullcontext
from collections.abc import Iterator, Mapping
from typing import Any, ContextManager

import torch

from .errors import DipscopeError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp64")


def check_device_name(name: str) -> str:
    """``name``'s device type (``cuda`` of ``cuda:1``) if it is one of :data:`DEVICES`; whether
    it is available here is :func:`resolve_device`'s question."""
    base = name.split(":")[0]
    if base not in DEVICES:
        raise DipscopeError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return base


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    base = check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise DipscopeError("device cuda was asked for but PyTorch sees no CUDA GPU here")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DipscopeError("device mps was asked for but it is not available here")
    return torch.device(name)


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AMX-BF16 or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere."""
    if name not in PRECISIONS:
        raise DipscopeError(f"unknown precision {name!r}; choose auto, fp32, bf16 or fp64")
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def compute_dtype(precision: str) -> torch.dtype:
    """Dtype of weights, inputs and loss: float64 for ``fp64`` (exactness checks), else float32."""
    return torch.float64 if precision == "fp64" else torch.float32


def autocast(precision: str, device: torch.device, cache: bool = True) -> ContextManager:
    """Autocast context for the forward pass (fp32 master weights and loss stay fp32);
    ``cache=False`` for a pass captured in a CUDA graph (autocast's weight cache would hold
    tensors made during capture)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def denormals_flushed() -> bool:
    """True when the calling thread flushes subnormal floats to zero (a probe: 1e-39 × 1 in fp32)."""
    return (torch.tensor([1e-39], dtype=torch.float32, device="cpu") * 1.0).item() == 0.0


def can_flush_denormals(device: torch.device) -> bool:
    """True when fits on ``device`` can flush subnormal floats to zero: a CPU whose FTZ/DAZ bits
    torch can set (x86 with SSE3; ``torch.set_flush_denormal`` says)."""
    if device.type != "cpu":
        return False
    before = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(before)
    return supported


def check_flush_denormals(enabled: bool, device: torch.device, name: str = "flush_denormals") -> None:
    """Refuse ``name`` (a setting asking to flush subnormal floats) where fits on ``device``
    cannot flush them, so that no record claims a flush that did not happen."""
    if enabled and not can_flush_denormals(device):
        raise DipscopeError(f"{name} needs a CPU that can flush subnormal floats to zero; the fit would run on "
                            f"{device.type}" + (" (this CPU cannot)" if device.type == "cpu" else ": use the CPU"))


@contextmanager
def flushed_denormals(enabled: bool, device: torch.device) -> Iterator[bool]:
    """Within: on a CPU, subnormal floats (|x| < 1.2e-38 in fp32) are flushed to zero; yields
    whether they are.

    x86 CPUs spend ~100 cycles on an operation with a subnormal operand: fused Adam over 8 M
    subnormal values took 157–227 ms against 6 ms (one thread, ``benchmarks/RESULTS.md``).
    ``torch.set_flush_denormal`` sets the FTZ/DAZ bits of the *calling thread* only: torch's
    intra-op worker threads started before it keep their own mode (threads started after it
    inherit it), so with more than one torch thread part of the arithmetic may not be flushed
    (the numbers stay exact there, the speed-up is smaller). The sweeps that use it run one
    thread. Nothing happens when ``enabled`` is false, off the CPU, or where the CPU cannot
    flush; the thread's previous mode (FTZ and DAZ together) is restored on leaving.
    """
    if device.type != "cpu":
        yield False
        return
    before = denormals_flushed()
    if not enabled or not torch.set_flush_denormal(True):
        yield before
        return
    try:
        yield True
    finally:
        torch.set_flush_denormal(before)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: what :func:`keep_freed_memory` did to this process's allocator (recorded in ``run.json``)
_ALLOCATOR = ["system"]


def keep_freed_memory() -> str:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of giving it back to the OS.

    PyTorch on the CPU takes every tensor from ``malloc``. glibc serves a request above its
    mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so a model
    with large tensors touches new pages, one page fault per 4 KiB, on every step: DIP-Linear-2048
    (a 49 152 × 2 048 first and last layer) writes two 400 MB weight gradients a step into fresh
    memory. With ``M_MMAP_MAX = 0`` (every block from the heap) and ``M_TRIM_THRESHOLD = -1`` (the
    heap never trimmed; ``man mallopt``), the same pages are reused: the arithmetic, and so every
    number, is unchanged (tested), and the step is faster where allocation dominated
    (``benchmarks/RESULTS.md``). The price: the process holds on to its peak memory until it ends.

    The ``dipscope`` command calls this once at start; a program that uses the library can.
    Nothing happens off glibc (macOS, Windows, musl), when ``DIPSCOPE_MALLOC=system``, when the
    user set ``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc`` tunable in
    ``GLIBC_TUNABLES`` (theirs win), or when ``LD_PRELOAD`` puts another allocator (jemalloc,
    tcmalloc, mimalloc) in glibc's place: glibc's settings would not reach it.

    Returns
    -------
    str
        ``"glibc, freed memory kept"`` when applied (now or before), else ``"system"``.
    """
    if _ALLOCATOR[0] != "system":
        return _ALLOCATOR[0]
    if os.environ.get("DIPSCOPE_MALLOC", "").lower() == "system" or \
            {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ) or \
            "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return "system"
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "system"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "system"
    if mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1:
        _ALLOCATOR[0] = "glibc, freed memory kept"
    return _ALLOCATOR[0]


def allocator() -> str:
    """How this process's CPU memory allocator is set: ``"system"`` or what
    :func:`keep_freed_memory` applied."""
    return _ALLOCATOR[0]


def describe_device(device: torch.device) -> dict[str, Any]:
    """Name, thread count and relevant capabilities of ``device``."""
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["name"] = cpu_model()
        info["cpu_count"] = os.cpu_count()
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["native_bf16"] = cpu_has_native_bf16()
        info["allocator"] = allocator()
    return info


def device_in_words(device: Mapping[str, Any] | str | None) -> str:
    """A device as :func:`describe_device` records it, in words: its name, whether the CPU has
    native bf16 (where that was recorded) and the torch thread count, e.g.
    ``"Intel(R) Xeon(R) Processor (native bf16), 1 thread"``."""
    if not isinstance(device, Mapping):
        return str(device) if device else "?"
    bf16 = {True: " (native bf16)", False: " (no native bf16)"}.get(device.get("native_bf16"), "")
    threads = device.get("torch_threads")
    plural = "s" if threads != 1 else ""
    return f"{device.get('name') or device.get('type', '?')}{bf16}" + (f", {threads} thread{plural}" if threads else "")


def machine() -> str:
    """This machine in words, for a report: the CPU (native bf16 or not), the GPU if there is
    one, torch's version and thread count."""
    cpu = describe_device(torch.device("cpu"))
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{device_in_words({**cpu, 'torch_threads': None})}{gpu}, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def source_commit() -> dict[str, Any]:
    """Where this dipscope's code came from, when it runs from a git checkout of the project:
    ``{"commit": HASH, "tree_changed": BOOL}`` (tracked files differ from the commit), else ``{}``.

    Asked of the local ``git`` only (no network), once per process; a missing ``git``, a
    package installed outside a checkout, or any git failure give ``{}``.
    """
    global _SOURCE
    if _SOURCE is None:
        _SOURCE = _ask_git()
    return dict(_SOURCE)


_SOURCE: dict[str, Any] | None = None


def _ask_git() -> dict[str, Any]:
    import subprocess
    from pathlib import Path

    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10,
                              check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top / "src" / "dipscope" != package:  # installed inside some other repository
            return {}
        return {"commit": git("rev-parse", "HEAD"),
                "tree_changed": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def versions() -> dict[str, Any]:
    """Versions of Python and the libraries that determine the numbers, and dipscope's own:
    its release and, from a git checkout, its commit and whether tracked files had changes
    (:func:`source_commit`: ``dipscope_commit``, ``dipscope_tree_changed``)."""
    import numpy
    import scipy
    import skimage

    from . import __version__

    return {
        "dipscope": __version__,
        **{f"dipscope_{k}": v for k, v in source_commit().items()},
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "platform": platform.platform(),
    }


STREAMS = {"weights": 0, "input": 1, "input_noise": 2, "degradation": 3, "lowfreq_noise": 4, "bandpass_noise": 5, "mask": 6}


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one random stream of a run.

    PyTorch's generators seeded with the same integer produce the same underlying numbers, so a
    network whose weights (global generator, ``seed``) and input ``z`` (a generator seeded with
    the same ``seed``) come from one seed gets an input computed from the same underlying numbers
    as its first weights. With seed 0 that made the study's DIP fit white noise within ~100 steps
    (best PSNR 21.5 dB on average over the 9 images of the denoising table, against 20.4 dB for
    the noisy input and 26.2 dB for seed 1; ``results/denoise-table/gpu-paper-before-seed-fix``).
    Every stream of a run is therefore seeded from ``(seed, stream)`` through NumPy's
    ``SeedSequence`` hash (tested in ``tests/test_denoise_table.py``).
    """
    import numpy as np

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DipscopeError(f"a seed must be an integer ≥ 0, not {seed!r}")
    return int(np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(1, np.uint64)[0] >> 1)
