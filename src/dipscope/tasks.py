"""The inverse problems ``dipscope restore`` solves, and how each turns what the user gives
into the measurement model ``y = A(x) + n`` that the fit loop minimises ``||A(f_θ(z)) − y||²`` on.

========  =============================  ==================================  ======================
task      forward operator ``A``          IMAGE is                            default preset
========  =============================  ==================================  ======================
denoise   identity                        clean (noise added) or ``noisy``    ``dipscope``
inpaint   mask ``m ⊙ x`` (white = known)  clean (masked here) or ``measured`` ``ulyanov2018-inpaint``
superres  Lanczos-2 shrink ×factor        the low-resolution measurement      ``ulyanov2018-superres``
deblur    blur ``k * x``                  clean (blurred here) or ``measured`` ``ulyanov2018``
========  =============================  ==================================  ======================

When IMAGE is clean, the task degrades it (seeded) and IMAGE is the reference for PSNR;
otherwise ``--clean`` may give the reference (for super-resolution: the high-resolution image).

Early stopping (``--stop auto``) applies where the measurement holds noise the network would
end up fitting and a rule can read it: denoising always (even at σ = 0, as before), deblurring
when noise was added (``σ > 0``) or IMAGE is a given measurement (its noise is unknown). There
the rule compares ``A(x_t)`` with ``y`` (:class:`~dipscope.stopping.EarlyStopping` with the
operator). Noiseless inpainting and super-resolution have nothing to overfit: the data term
constrains only the known pixels (or the frequencies below the low-resolution Nyquist limit),
and the network keeps refining the rest as it fits them — the original notebooks run a fixed
number of steps and return the last output, and so does ``auto`` for them. Inpainting *with*
noise runs its steps too: the rules' σ estimate and residual would read the masked zeros as
data (no rule handles masks yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import DipscopeError
from .images import read_image
from .physics import Blur, Downsample, GaussianNoise, Identity, Mask, Operator, parse_blur

TASKS = ("denoise", "inpaint", "superres", "deblur")
DEFAULT_PRESETS = {"denoise": "dipscope", "inpaint": "ulyanov2018-inpaint", "superres": "ulyanov2018-superres",
                   "deblur": "ulyanov2018"}
RESULT_FILES = {"denoise": "denoised.png", "inpaint": "restored.png", "superres": "restored.png",
                "deblur": "restored.png"}
MEASUREMENT_FILES = {"denoise": "noisy.png", "inpaint": "masked.png", "superres": "low-resolution.png",
                     "deblur": "blurred.png"}
#: The task of each of dipscope's operators; any other operator's (e.g. a deepinv physics) is ``restore``.
OPERATOR_TASKS: dict[type, str] = {Identity: "denoise", Mask: "inpaint", Downsample: "superres", Blur: "deblur"}


def task_of(operator: Operator) -> str:
    """The task an operator solves (``restore`` for one that is not dipscope's)."""
    return OPERATOR_TASKS.get(type(operator), "restore")


def extra_images(operator: Operator) -> dict[str, torch.Tensor]:
    """Images a run directory keeps beside the measurement: a mask's ``mask.png``."""
    return {"mask.png": operator.mask} if isinstance(operator, Mask) else {}


@dataclass
class Measurement:
    """What one task fits: ``target`` (``y``), its operator ``A``, the reference ``clean`` (of
    ``A``'s domain shape, if known), whether ``y`` holds noise (``noisy``: the stopping default
    applies), the record of how ``y`` was made, and extra images to keep (e.g. ``mask.png``)."""

    target: torch.Tensor
    operator: Operator
    clean: torch.Tensor | None
    noisy: bool
    record: dict[str, Any]
    extra_images: dict[str, torch.Tensor] = field(default_factory=dict)


def measure(task: str, image: torch.Tensor, *, given: bool, clean_path: Path | None, sigma: float | None,
            noise_seed: int, mask_path: Path | None = None, drop: float | None = None, factor: int | None = None,
            kernel: str | None = None) -> Measurement:
    """Build the measurement of ``task`` from IMAGE (``given``: IMAGE is already the measurement).

    ``sigma`` is on the 0–255 scale (None: 25 for denoising, no noise for the other tasks);
    every file is read and every shape checked here, before any fitting.
    """
    if task not in TASKS:
        raise DipscopeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    clean = read_image(clean_path) if clean_path is not None else None
    if task == "superres":
        given = True  # IMAGE is the low-resolution input
    if task == "denoise":
        operator: Operator = Identity()
        record: dict[str, Any] = {"operator": "identity"}
    elif task == "inpaint":
        operator, record = _mask(image, mask_path, drop, noise_seed)
    elif task == "superres":
        if factor is None:
            raise DipscopeError("superres needs --factor (2, 4, 8, …)")
        operator, record = Downsample(factor), {"operator": "downsample", "factor": factor, "filter": "lanczos2"}
    else:
        if kernel is None:
            raise DipscopeError("deblur needs --kernel gaussian:STD or box:SIZE")
        kind, value, k = parse_blur(kernel)
        if min(image.shape[-2:]) <= k.shape[-1] // 2:
            raise DipscopeError(f"a {_shape(image.shape)} image is too small for the {k.shape[0]}×{k.shape[1]} "
                                f"kernel of {kernel}")
        operator = Blur(k)
        record = {"operator": "blur", "kernel": kernel, "blur": kind, "width": value, "size": list(k.shape)}
    expected = operator.domain_shape(image.shape)
    if clean is not None and tuple(clean.shape) != tuple(expected):
        what = "the high-resolution output" if task == "superres" else "IMAGE"
        raise DipscopeError(f"the clean image {clean_path} is {_shape(clean.shape)} but {what} is {_shape(expected)}")
    if given and drop is not None:
        raise DipscopeError("--drop draws a new random mask, which a --measured image's missing pixels would not "
                            "follow: give the mask of the measured image with --mask")
    extra = extra_images(operator)
    if given:
        target = image * operator.mask if isinstance(operator, Mask) else image
        return Measurement(target, operator, clean, noisy=task in ("denoise", "deblur"),
                           record={"kind": "given", **record, "clean": str(clean_path) if clean_path else None},
                           extra_images=extra)
    sigma = (25.0 if task == "denoise" else 0.0) if sigma is None else sigma
    with torch.no_grad():
        target = operator(image[None])[0]
    if sigma > 0:
        target = GaussianNoise(sigma / 255.0, noise_seed)(target, clip=True)  # the one 0–255 → [0, 1] conversion
        if isinstance(operator, Mask):
            target = target * operator.mask
    kind = "gaussian" if task == "denoise" else f"{task}+gaussian" if sigma > 0 else task
    noisy = task == "denoise" or (sigma > 0 and task != "inpaint")  # see the module docstring
    return Measurement(target.clamp(0, 1), operator, image, noisy=noisy,
                       record={"kind": kind, **record, "sigma": sigma, "seed": noise_seed, "clip": True},
                       extra_images=extra)


def _mask(image: torch.Tensor, mask_path: Path | None, drop: float | None, seed: int) -> tuple[Mask, dict[str, Any]]:
    """The inpainting mask: read (white = known, thresholded at ½) or a seeded Bernoulli mask."""
    if (mask_path is None) == (drop is None):
        raise DipscopeError("inpaint needs either --mask MASK.png or --drop FRACTION (not both)")
    if drop is not None:
        mask = Mask.random(image.shape, drop, seed)
        if not bool(mask.mask.any()):
            raise DipscopeError(f"dropping a fraction {drop:g} of the {mask.mask.numel()} values left none known: "
                                "the fit would have no data; drop a smaller fraction")
        return mask, {"operator": "mask", "drop": drop, "mask_seed": seed,
                      "known_fraction": float(mask.mask.mean())}
    values = read_image(mask_path)
    if tuple(values.shape[1:]) != tuple(image.shape[1:]):
        raise DipscopeError(f"the mask {mask_path} is {_shape(values.shape)} but the image is {_shape(image.shape)}")
    known = (values > 0.5).float()
    if known.shape[0] != 1 and bool((known == known[:1]).all()):
        known = known[:1]
    if known.shape[0] not in (1, image.shape[0]):
        raise DipscopeError(f"the mask {mask_path} has {known.shape[0]} channels but the image has {image.shape[0]}")
    if not bool(known.any()):
        brightest = round(float(values.max()) * 255)
        scale = f"; its brightest value is {brightest} of 255 — a 0/1 mask must be saved as 0/255" if brightest else ""
        raise DipscopeError(f"the mask {mask_path} marks no pixel as known (white = known, above 127){scale}")
    return Mask(known), {"operator": "mask", "mask": str(mask_path), "known_fraction": float(known.mean())}


def _shape(shape: Any) -> str:
    """``H×W``, with the colour when the shape has channels: ``64×64 grey``, ``64×64 RGB``."""
    colour = {1: " grey", 3: " RGB"}.get(shape[0], f" with {shape[0]} channels") if len(shape) == 3 else ""
    return f"{shape[-2]}×{shape[-1]}{colour}"
