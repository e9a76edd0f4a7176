"""Everything the loop needs before its first step: checks, the device's settings, the padded
shape, the networks and their inputs, the optimiser."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..errors import DipscopeError
from ..images import centred_padding, check_min_size
from ..models import ModelSpec, coordinate_grid, estimate_memory, input_shape
from ..physics.operators import Identity, Operator
from .types import FitConfig


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a fit on ``device`` (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def network_input(spec: ModelSpec, shape: tuple[int, int, int], config: FitConfig, gen: torch.Generator) -> torch.Tensor:
    """The fixed input ``z`` of one run: the pixel coordinates for a coordinate MLP, the input a
    user's network came with, else noise (``U[0, 1)`` or ``N(0, 1)`` per ``config.input_noise``)
    times ``config.input_scale``."""
    if spec.input_kind == "coordinates":
        return coordinate_grid(shape[1], shape[2])
    if spec.input_kind == "given":  # a user's network with its own input (dipscope.models.NetworkSpec)
        return spec.given_input(shape)
    z = torch.empty(1, *input_shape(spec, shape))
    if config.input_noise == "uniform":
        z.uniform_(generator=gen)
    else:
        z.normal_(generator=gen)
    return z * config.input_scale


def padded_shape(spec: ModelSpec, shape: Sequence[int]) -> tuple[tuple[int, int, int], tuple[int, int, int, int]]:
    """The network's output shape for an image of ``shape`` and the padding (l, r, t, b) to crop."""
    c, h, w = shape
    padding = centred_padding(h, w, spec.pad_multiple)
    return (c, h + padding[2] + padding[3], w + padding[0] + padding[1]), padding


def check_inputs(spec: ModelSpec, target: torch.Tensor, config: FitConfig, clean: torch.Tensor | None = None,
                 operator: Operator | None = None) -> None:
    """Refuse a fit that cannot run (bad settings, a target the network cannot take), before any step.

    The network outputs an image of the operator's domain shape (the target's, except for
    super-resolution); the clean reference must have that shape."""
    config.validate()
    check_image("target", target)
    operator = operator or Identity()
    shape = operator.domain_shape(target.shape)
    _, h, w = shape
    if spec.family == "skip" and min(h, w) < spec.min_side:
        fit_levels = 0
        while fit_levels < spec.levels and spec.with_levels(fit_levels + 1).min_side <= min(h, w):
            fit_levels += 1
        fits = f"at most {fit_levels} level{'s' if fit_levels != 1 else ''} fit it" if fit_levels else "no level fits it"
        need = f"{spec.min_side} px" if spec.levels <= 20 else f"2^{spec.levels + 1} px"
        raise DipscopeError(f"image is {h}×{w} px but the {spec.levels}-level network needs at least {need} per side; "
                            f"{fits} (--levels)")
    check_min_size(h, w, spec.min_side, f"the {spec.family} model")
    if clean is not None:
        check_image("clean", clean)
    if clean is not None and tuple(clean.shape) != tuple(shape):
        what = "the target" if tuple(shape) == tuple(target.shape) else "the restored image"
        raise DipscopeError(f"the clean image is {tuple(clean.shape)} but {what} is {tuple(shape)}")
    if config.pixel_batch and spec.input_kind != "coordinates":
        raise DipscopeError("pixel minibatches need a coordinate model (relunet)")
    if config.pixel_batch and not operator.pixelwise:
        raise DipscopeError(f"pixel minibatches need a pixel-wise forward operator, not {type(operator).__name__}")


#: The values an image may take: [0, 1], with room for a noisy measurement's excursions; an image
#: outside these bounds is on another scale (0–255) or broken.
VALUE_RANGE = (-1.0, 2.0)


def check_image(name: str, image: object) -> None:
    """Refuse an image the loop cannot fit meaningfully: not a floating-point torch tensor, not
    (C, H, W) (an (H, W, C) array is named as such), values that are NaN or infinite, or values
    on the 0–255 scale instead of [0, 1] (:data:`VALUE_RANGE`). ``name`` is the parameter's."""
    if not isinstance(image, torch.Tensor):
        raise DipscopeError(f"{name} must be a torch.Tensor (C, H, W) with values in [0, 1], not {type(image).__name__}")
    if not image.is_floating_point():
        raise DipscopeError(f"{name} is a {str(image.dtype).replace('torch.', '')} tensor; the fit needs floating-point "
                            "values in [0, 1] (divide 0–255 values by 255)")
    shape = tuple(image.shape)
    if image.ndim != 3:
        raise DipscopeError(f"{name} must be a (C, H, W) image, got shape {shape}")
    if shape[0] > 4 and shape[2] in (1, 2, 3, 4):
        raise DipscopeError(f"{name} has shape {shape}, which looks like (H, W, C); give (C, H, W), e.g. "
                            f"{name}.permute(2, 0, 1)")
    if image.numel() and not bool(torch.isfinite(image).all()):
        bad = int((~torch.isfinite(image)).sum())
        raise DipscopeError(f"{name} holds {bad} NaN or infinite value{'s' if bad != 1 else ''}; the fit needs finite values")
    if image.numel():
        low, high = float(image.min()), float(image.max())
        if low < VALUE_RANGE[0] or high > VALUE_RANGE[1]:
            hint = " (0–255 values? divide them by 255)" if high > VALUE_RANGE[1] else ""
            raise DipscopeError(f"{name}'s values span [{low:g}, {high:g}]; the fit needs values in [0, 1]{hint}")


def check_memory(spec: ModelSpec, out_shape: tuple[int, int, int], runs: int, pixel_batch: int | None,
                 device: torch.device) -> None:
    """Refuse a fit whose estimated memory exceeds what ``device`` has free."""
    need = runs * estimate_memory(spec, tuple(out_shape), pixel_batch)
    free = available_memory(device)
    if free is not None and need > free:
        raise DipscopeError(
            f"this configuration needs about {need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB "
            f"is free on {device.type}; use a smaller image, model or width"
        )


def make_optimizer(params: Iterable[torch.nn.Parameter], config: FitConfig, device: torch.device,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """Adam; the fused (single-kernel) implementation on the fast path where it exists;
    ``capturable`` keeps its step count on the device, so a CUDA graph can replay the update."""
    fused = config.fast and device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=config.lr, fused=True if fused else None, capturable=capturable)


def resolve_layout(channels_last: bool | None, precision: str, device: torch.device) -> bool:
    """``None`` (auto): channels-last where it pays — bf16 or CUDA; NCHW for fp32 on a CPU.

    Measured on a 2-core AVX-512 CPU without native bf16, channels-last made the fp32 step
    slower (``benchmarks/RESULTS.md``), so it is only the default where tensor cores or AMX
    use it.
    """
    if channels_last is not None:
        return channels_last
    return precision == "bf16" or device.type == "cuda"


def enable_fast_math(device: torch.device) -> None:
    """Process-wide settings of the fast path: TF32 matmuls/convolutions and cuDNN autotuning on
    CUDA. (These change numerics only at TF32's 10-bit mantissa, and only on CUDA.)"""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
