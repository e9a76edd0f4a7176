"""Denoising an image end to end: read, degrade, fit, and write a self-describing run directory.

This is what ``dipscope denoise`` runs; it composes :mod:`images`, :mod:`degrade`,
:mod:`presets`, :mod:`fit` and :mod:`runs.rundir` and holds no logic of its own beyond that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from .datasets import sha256_file
from .errors import DipscopeError
from .fit import Callback, FitConfig, FitResult, check_inputs, fit
from .images import read_image, write_image
from .models import ModelSpec, spec_to_dict
from .physics import GaussianNoise
from .plots import fit_curves
from .presets import preset
from .runs.rundir import RunWriter, run_record, write_csv, write_json


@dataclass
class DenoiseRequest:
    """One denoising run as the user asked for it (before preset resolution)."""

    image: Path
    out: Path
    sigma: float | None = 25.0
    noisy: bool = False
    clean: Path | None = None
    preset: str = "ulyanov2018"
    model: str = "skip"
    steps: int | None = None
    lr: float | None = None
    levels: int | None = None
    linear_width: int | None = None  # DIP-Linear's width (only with model="linear"; default 128)
    device: str = "auto"
    precision: str | None = None
    channels_last: bool | None = None
    seed: int = 0
    noise_seed: int | None = None
    force: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    stop: str = "auto"  # early-stopping rule (dipscope.stopping): auto, none or a rule name
    stop_sigma: float | None = None  # noise level the rule assumes (0–255); None: estimated from the input
    stop_ema: bool | None = None  # return the EMA at the rule's step (None: the default of dipscope.stopping)

    def validate(self) -> None:
        """Refuse every impossible setting (one :class:`DipscopeError`), before any file is touched."""
        if self.noisy and self.sigma is not None:
            raise DipscopeError("give either --sigma (add noise to a clean image) or --noisy, not both")
        if self.clean is not None and not self.noisy:
            raise DipscopeError("--clean is for --noisy inputs; with --sigma the input itself is the clean image")
        if self.linear_width is not None and self.model != "linear":
            raise DipscopeError(f"--width sets the width of DIP-Linear (--model linear); --model {self.model} "
                                "does not use it")
        if self.levels is not None and self.model == "relunet":
            raise DipscopeError("--levels sets the encoder-decoder depth; --model relunet has no levels")
        _finite("--sigma", self.sigma, low=0.0)
        _finite("--stop-sigma", self.stop_sigma, low=0.0, strict=True)
        _finite("--lr", self.lr, low=0.0, strict=True)
        for name, value, low in (("--steps", self.steps, 0), ("--levels", self.levels, 1), ("--seed", self.seed, 0),
                                 ("--noise-seed", self.noise_seed, 0), ("--width", self.linear_width, 1)):
            if value is not None and value < low:
                raise DipscopeError(f"{name} must be ≥ {low}, not {value}")
        if self.stop not in ("auto", "none"):
            from .stopping import make_rule

            make_rule(self.stop)  # an unknown rule fails here


def _finite(name: str, value: float | None, low: float, strict: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise DipscopeError(f"{name} must be a finite number {'>' if strict else '≥'} {low:g}, not {value}")


def resolve(request: DenoiseRequest) -> tuple[ModelSpec, FitConfig]:
    """Apply the preset, then the user's explicit settings."""
    width = 128 if request.linear_width is None else request.linear_width
    spec, config = preset(request.preset, request.model, width)
    if request.levels is not None:
        spec = spec.with_levels(request.levels)
    updates: dict[str, Any] = {"device": request.device, "seed": request.seed}
    for name in ("steps", "lr", "precision", "channels_last"):
        value = getattr(request, name)
        if value is not None:
            updates[name] = value
    updates.update(request.overrides)
    config = replace(config, **updates)
    config.validate()
    return spec, config


@dataclass
class DenoiseRun:
    """What :func:`denoise` made: the run directory, the fit's result and the ``stopping`` record.

    ``kept`` is the finished run that an interrupted ``--force`` run did not replace (the
    interrupted run went to ``out`` beside it), else None.
    """

    out: Path
    result: FitResult
    stopping: dict[str, Any]
    kept: Path | None = None


def denoise(request: DenoiseRequest, callbacks: Sequence[Callback] = ()) -> DenoiseRun:
    """Run one denoising fit and write its run directory.

    The directory holds ``denoised.png`` (the result: the image the early-stopping rule
    chose, or with ``stop="none"`` the last step's), ``noisy.png``, ``final.png`` (the output at
    the last step fitted), ``ema.png``, ``best.png`` (when a clean image is known),
    ``metrics.csv``, ``losses.csv``, ``curves.png`` and ``run.json`` (its ``stopping`` section
    records the rule, the chosen step and why). ``request.steps`` is the maximum when a rule is on.

    Every setting, the input files and the output directory are checked before the first step.
    A fit interrupted (Ctrl-C, SIGTERM) is still written, with status ``interrupted`` — into
    ``request.out`` if that was empty, else beside it (``OUT.interrupted-TIME``): an interrupted
    run never replaces a finished one.
    """
    request.validate()
    writer = RunWriter(request.out, force=request.force)  # refuses an existing run before any work
    spec, config = resolve(request)
    image = read_image(request.image)
    if request.noisy:
        target, clean = image, (read_image(request.clean) if request.clean else None)
        if clean is not None and clean.shape != target.shape:
            raise DipscopeError(
                f"the clean image {request.clean} is {tuple(clean.shape)} but the noisy one is {tuple(target.shape)}"
            )
        degradation: dict[str, Any] = {"kind": "given", "clean": str(request.clean) if request.clean else None}
    else:
        sigma = 25.0 if request.sigma is None else request.sigma
        noise_seed = request.seed if request.noise_seed is None else request.noise_seed
        clean = image
        target = GaussianNoise(sigma / 255.0, noise_seed)(image, clip=True)  # the one 0–255 → [0, 1] conversion
        degradation = {"kind": "gaussian", "sigma": sigma, "seed": noise_seed, "clip": True}
    check_inputs(spec, target, config, clean)

    from .stopping import DEFAULT_RETURN_EMA, EarlyStopping, make_rule

    return_ema = DEFAULT_RETURN_EMA if request.stop_ema is None else request.stop_ema
    stopper = None
    if request.stop != "none":
        stop_sigma = None if request.stop_sigma is None else request.stop_sigma / 255.0
        stopper = EarlyStopping(make_rule(request.stop), target, sigma=stop_sigma, return_ema=return_ema)
        callbacks = [stopper, *callbacks]
    result = fit(spec, target, config, clean=clean, callbacks=callbacks)
    if stopper is not None and stopper.choice is not None:
        denoised = stopper.choice.image
        stopping: dict[str, Any] = {"requested": request.stop, **stopper.choice.summary()}
    else:
        use_ema = return_ema and result.ema is not None
        denoised = result.ema if use_ema else result.final
        stopping = {"requested": "none", "rule": None, "step": result.steps_done,
                    "source": "ema" if use_ema else "output", "stopped_early": False,
                    "reason": "no early stopping: the " + ("EMA" if use_ema else "output") + " at the last step"}
    stopping["max_steps"] = config.steps
    stopping["interrupted"] = result.interrupted
    stopping["denoised_psnr"] = _psnr_or_none(denoised, clean)

    kept = None
    if result.interrupted and writer.holds_something():
        kept, writer = writer.out, writer.beside("interrupted")
    with writer as tmp:
        write_image(tmp / "denoised.png", denoised)
        write_image(tmp / "noisy.png", target)
        write_image(tmp / "final.png", result.final)
        if result.ema is not None:
            write_image(tmp / "ema.png", result.ema)
        if result.best is not None:
            write_image(tmp / "best.png", result.best)
        write_csv(tmp / "metrics.csv", result.history)
        write_csv(tmp / "losses.csv", ({"step": i, "loss": float(v)} for i, v in enumerate(result.losses)))
        fit_curves(result.losses, result.history, tmp / "curves.png",
                   f"{request.image.name}: {spec.family}, preset {request.preset}")
        record = run_record(
            status="interrupted" if result.interrupted else "complete",
            task="denoise",
            image={"path": str(request.image), "sha256": sha256_file(request.image), "shape": list(image.shape)},
            degradation=degradation,
            noisy_psnr=_psnr_or_none(target, clean),
            preset=request.preset,
            model=spec_to_dict(spec),
            fit={**asdict(config), "precision_resolved": result.precision},
            seed=config.seed,
            device=result.device,
            result=result.summary(),
            stopping=stopping,
        )
        write_json(tmp / "run.json", record)
        out = writer.commit()
    return DenoiseRun(out, result, stopping, kept)


def _psnr_or_none(target: torch.Tensor, clean: torch.Tensor | None) -> float | None:
    from .metrics import psnr

    return None if clean is None else psnr(target, clean)
