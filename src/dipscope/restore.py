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
from . import interrupts
from .errors import DipscopeError
from .fit import Callback, FitConfig, FitResult, check_inputs, fit_runs
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
    runs: int = 1  # fit this many seeds (seed, seed + 1, …) and return the mean of their results

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
                                 ("--runs", self.runs, 1),
                                 ("--noise-seed", self.noise_seed, 0), ("--width", self.linear_width, 1)):
            if value is not None and value < low:
                raise DipscopeError(f"{name} must be ≥ {low}, not {value}")
        from .stopping import RULES

        if self.stop not in ("auto", "none", *RULES):
            raise DipscopeError(f"unknown --stop {self.stop!r}; choose auto, none or one of {', '.join(RULES)}")


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
    interrupted run went to ``out`` beside it), else None. ``result`` is the first run's.
    """

    out: Path
    result: FitResult
    stopping: dict[str, Any]
    kept: Path | None = None
    results: list[FitResult] = field(default_factory=list)  # every run's, for an ensemble


def denoise(request: DenoiseRequest, callbacks: Sequence[Callback] = ()) -> DenoiseRun:
    """Run one denoising fit (or an ensemble of ``request.runs`` fits) and write its run directory.

    The directory holds ``denoised.png`` (the result: the image the early-stopping rule
    chose, or with ``stop="none"`` the last step's; for an ensemble the mean of the runs'
    choices, each also kept as ``denoised-run-K.png``), ``noisy.png``, ``final.png`` (the
    output at the last step fitted), ``ema.png``, ``best.png`` (when a clean image is known),
    ``metrics.csv``, ``losses.csv``, ``curves.png`` (these of the first run) and ``run.json``
    (its ``stopping`` section records the rule, the chosen step and why, per run for an
    ensemble). ``request.steps`` is the maximum when a rule is on.

    Every setting, the input files and the output directory are checked before the first step.
    A fit interrupted (Ctrl-C, SIGTERM) is still written, with status ``interrupted`` — into
    ``request.out`` if that was empty, else beside it (``OUT.interrupted-TIME``): an interrupted
    run never replaces a finished one.
    """
    request.validate()
    writer = RunWriter(request.out, force=request.force)  # refuses an existing run before any work
    spec, config = resolve(request)
    image = read_image(request.image)
    target, clean, degradation = _measurement(request, image)
    check_inputs(spec, target, config, clean)

    from .stopping import DEFAULT_RETURN_EMA, EarlyStopping, make_rule

    return_ema = DEFAULT_RETURN_EMA if request.stop_ema is None else request.stop_ema
    seeds = [config.seed + k for k in range(request.runs)]
    stoppers: list[EarlyStopping | None] = [None] * len(seeds)
    if request.stop != "none":
        stop_sigma = None if request.stop_sigma is None else request.stop_sigma / 255.0
        stoppers = [EarlyStopping(make_rule(request.stop), target, sigma=stop_sigma, return_ema=return_ema)
                    for _ in seeds]
    results = fit_runs(spec, target, config, seeds=seeds, clean=clean,
                       callbacks=[[s, *callbacks] if s is not None else list(callbacks) for s in stoppers])
    with interrupts.deferred():  # from here on a signal must not throw away the finished fit
        chosen = [_choice(stopper, result, return_ema, request.stop) for stopper, result in zip(stoppers, results)]
        for image_k, stop_k in chosen:
            stop_k["max_steps"] = config.steps
            stop_k["denoised_psnr"] = _psnr_or_none(image_k, clean)
        interrupted = any(r.interrupted for r in results) or len(results) < len(seeds)
        complete = [c for c, r in zip(chosen, results) if not r.interrupted] or chosen[:1]
        denoised, stopping = complete[0] if len(complete) == 1 else _ensemble(complete, seeds, clean)
        stopping["interrupted"] = interrupted
        if len(seeds) > 1:
            stopping["runs_requested"] = len(seeds)
            stopping["runs_averaged"] = len(complete)
        return _write(writer, request, spec, config, image, target, clean, degradation, results, chosen,
                      denoised, stopping, interrupted)


def _write(writer: RunWriter, request: DenoiseRequest, spec: ModelSpec, config: FitConfig, image: torch.Tensor,
           target: torch.Tensor, clean: torch.Tensor | None, degradation: dict[str, Any], results: list[FitResult],
           chosen: list[tuple[torch.Tensor, dict[str, Any]]], denoised: torch.Tensor, stopping: dict[str, Any],
           interrupted: bool) -> DenoiseRun:
    """Write the run directory (beside a finished run when ``interrupted``) and return what was made."""
    result = results[0]
    kept = None
    if interrupted and writer.holds_something():
        kept, writer = writer.out, writer.beside("interrupted")
    with writer as tmp:
        write_image(tmp / "denoised.png", denoised)
        if len(chosen) > 1:
            for k, (image_k, _) in enumerate(chosen):
                write_image(tmp / f"denoised-run-{k}.png", image_k)
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
            status="interrupted" if interrupted else "complete",
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
            **({"ensemble": [r.summary() for r in results]} if len(results) > 1 else {}),
        )
        write_json(tmp / "run.json", record)
        out = writer.commit()
    return DenoiseRun(out, result, stopping, kept, results)


def _measurement(request: DenoiseRequest, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """The fitted target, the clean reference (if known) and the record of how the target was made."""
    if request.noisy:
        clean = read_image(request.clean) if request.clean else None
        if clean is not None and clean.shape != image.shape:
            raise DipscopeError(
                f"the clean image {request.clean} is {tuple(clean.shape)} but the noisy one is {tuple(image.shape)}"
            )
        return image, clean, {"kind": "given", "clean": str(request.clean) if request.clean else None}
    sigma = 25.0 if request.sigma is None else request.sigma
    noise_seed = request.seed if request.noise_seed is None else request.noise_seed
    target = GaussianNoise(sigma / 255.0, noise_seed)(image, clip=True)  # the one 0–255 → [0, 1] conversion
    return target, image, {"kind": "gaussian", "sigma": sigma, "seed": noise_seed, "clip": True}


def _choice(stopper: Any, result: FitResult, return_ema: bool, requested: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """One run's result image and its ``stopping`` record: the rule's choice, or without a rule
    the EMA (or output) at the last step."""
    if stopper is not None and stopper.choice is not None:
        return stopper.choice.image, {"requested": requested, **stopper.choice.summary()}
    use_ema = return_ema and result.ema is not None
    return (result.ema if use_ema else result.final), {
        "requested": "none", "rule": None, "step": result.steps_done, "source": "ema" if use_ema else "output",
        "stopped_early": False, "reason": "no early stopping: the " + ("EMA" if use_ema else "output") + " at the last step"}


def _ensemble(chosen: list[tuple[torch.Tensor, dict[str, Any]]], seeds: list[int],
              clean: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The mean of the runs' chosen images (the DIP paper's averaging over restarts) and its record."""
    mean = torch.stack([image for image, _ in chosen]).mean(dim=0)
    first = chosen[0][1]
    return mean, {"requested": first["requested"], "rule": first["rule"], "source": f"mean of {len(chosen)} runs",
                  "step": max(s["step"] for _, s in chosen), "max_steps": first["max_steps"],
                  "stopped_early": all(s["stopped_early"] for _, s in chosen),
                  "sigma_255": first.get("sigma_255"), "sigma_given": first.get("sigma_given"),
                  "seeds": seeds[:len(chosen)], "denoised_psnr": _psnr_or_none(mean, clean),
                  "reason": f"the mean of the {len(chosen)} runs' chosen images", "runs": [s for _, s in chosen]}


def _psnr_or_none(target: torch.Tensor, clean: torch.Tensor | None) -> float | None:
    from .metrics import psnr

    return None if clean is None else psnr(target, clean)
