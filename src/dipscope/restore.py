"""Restoring an image end to end: read, degrade (or take the measurement as given), fit, and
write a self-describing run directory.

This is what ``dipscope denoise`` and ``dipscope restore`` run; it composes :mod:`images`,
:mod:`tasks` (the measurement and forward operator of each inverse problem), :mod:`presets`,
:mod:`fit`, :mod:`stopping` and :mod:`runs.rundir`, and holds no logic of its own beyond that.
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
from .physics import parse_blur
from .callbacks import SpectralObserver
from .plots import band_heatmap, fit_curves
from .presets import default_runs, preset
from .report import add_run_report
from .runtime import resolve_device
from .runs.rundir import RunWriter, run_record, write_csv, write_json
from .tasks import DEFAULT_PRESETS, MEASUREMENT_FILES, RESULT_FILES, TASKS, Measurement, measure


@dataclass
class RestoreRequest:
    """One restoration run as the user asked for it (before preset resolution).

    ``task`` is one of :data:`~dipscope.tasks.TASKS`; ``noisy`` means IMAGE is already the
    measurement (``--noisy`` of ``dipscope denoise``, ``--measured`` of ``dipscope restore``);
    ``sigma`` is on the 0–255 scale (None: 25 for denoising, none for the other tasks);
    ``preset`` None is the task's default (:data:`~dipscope.tasks.DEFAULT_PRESETS`).
    """

    image: Path
    out: Path
    sigma: float | None = None
    noisy: bool = False
    clean: Path | None = None
    preset: str | None = None
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
    runs: int | None = None  # fit this many seeds (seed, seed + 1, …) and return the mean of their results (None: the preset's)
    task: str = "denoise"
    mask: Path | None = None  # inpaint: white = known
    drop: float | None = None  # inpaint: fraction of values dropped at random
    factor: int | None = None  # superres
    kernel: str | None = None  # deblur: gaussian:STD or box:SIZE
    spectra: bool = False  # record the per-band error against the clean image (spectral.csv, spectrum.png)

    @property
    def preset_name(self) -> str:
        return self.preset if self.preset is not None else DEFAULT_PRESETS.get(self.task, "ulyanov2018")

    @property
    def n_runs(self) -> int:
        """Seeds to fit: ``runs``, else the preset's default (:func:`~dipscope.presets.default_runs`)."""
        return self.runs if self.runs is not None else default_runs(self.preset_name, self.model)

    @property
    def given(self) -> bool:
        """IMAGE is the measurement itself (always for super-resolution)."""
        return self.noisy or self.task == "superres"

    def validate(self) -> None:
        """Refuse every impossible setting (one :class:`DipscopeError`), before any file is touched."""
        self._validate_task()
        flag = "--noisy" if self.task == "denoise" else "--measured"
        if self.noisy and self.sigma is not None:
            raise DipscopeError(f"give either --sigma (add noise to a clean image) or {flag}, not both")
        if self.clean is not None and not self.given:
            raise DipscopeError(f"--clean is for {flag} inputs; otherwise IMAGE itself is the clean image")
        if self.linear_width is not None and self.model != "linear":
            raise DipscopeError(f"--width sets the width of DIP-Linear (--model linear); --model {self.model} "
                                "does not use it")
        if self.levels is not None and self.model == "relunet":
            raise DipscopeError("--levels sets the encoder-decoder depth; --model relunet has no levels")
        _finite("--sigma", self.sigma, low=0.0)
        _finite("--stop-sigma", self.stop_sigma, low=0.0, strict=True)
        _finite("--lr", self.lr, low=0.0, strict=True)
        for name, value, low in (("--steps", self.steps, 1), ("--levels", self.levels, 1), ("--seed", self.seed, 0),
                                 ("--runs", self.runs, 1),
                                 ("--noise-seed", self.noise_seed, 0), ("--width", self.linear_width, 1)):
            if value is not None and value < low:
                raise DipscopeError(f"{name} must be ≥ {low}, not {value}")
        from .stopping import RULES

        if self.stop not in ("auto", "none", *RULES):
            raise DipscopeError(f"unknown --stop {self.stop!r}; choose auto, none or one of {', '.join(RULES)}")
        if self.task == "inpaint" and self.stop not in ("auto", "none"):
            raise DipscopeError("no stopping rule reads masked measurements yet: use --stop auto or none (both run "
                                "the preset's steps for inpainting)")

    def _validate_task(self) -> None:
        """The task's own options: each belongs to one task, and is there when the task needs it."""
        if self.task not in TASKS:
            raise DipscopeError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        owners = {"--mask": ("mask", "inpaint"), "--drop": ("drop", "inpaint"), "--factor": ("factor", "superres"),
                  "--kernel": ("kernel", "deblur")}
        for flag, (name, task) in owners.items():
            if getattr(self, name) is not None and self.task != task:
                raise DipscopeError(f"{flag} is an option of --task {task}, not of {self.task}")
        if self.task == "superres":
            if self.sigma is not None:
                raise DipscopeError("superres fits IMAGE, the low-resolution input, as it is: --sigma adds no noise "
                                    "to it")
            if self.factor is None or self.factor < 2 or self.factor % 2:
                raise DipscopeError(f"superres needs an even --factor (2, 4, 8, …), not {self.factor}")
        if self.task == "inpaint" and (self.mask is None) == (self.drop is None):
            raise DipscopeError("inpaint needs either --mask MASK.png or --drop FRACTION (not both)")
        if self.drop is not None and not (math.isfinite(self.drop) and 0 <= self.drop < 1):
            raise DipscopeError(f"--drop must be a fraction in [0, 1), not {self.drop}")
        if self.task == "deblur":
            if self.kernel is None:
                raise DipscopeError("deblur needs --kernel gaussian:STD or box:SIZE")
            parse_blur(self.kernel)


def _finite(name: str, value: float | None, low: float, strict: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise DipscopeError(f"{name} must be a finite number {'>' if strict else '≥'} {low:g}, not {value}")


def resolve(request: RestoreRequest) -> tuple[ModelSpec, FitConfig]:
    """Apply the preset, then the user's explicit settings."""
    width = 128 if request.linear_width is None else request.linear_width
    spec, config = preset(request.preset_name, request.model, width)
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
    if config.cuda_graph and resolve_device(config.device).type != "cuda":
        raise DipscopeError(f"--cuda-graph needs a CUDA device, not {config.device!r}")
    return spec, config


@dataclass
class RestoreRun:
    """What :func:`restore` made: the run directory, the fit's result and the ``stopping`` record.

    ``kept`` is the finished run that an interrupted ``--force`` run did not replace (the
    interrupted run went to ``out`` beside it), else None. ``result`` is the first run's.
    """

    out: Path
    result: FitResult
    stopping: dict[str, Any]
    kept: Path | None = None
    results: list[FitResult] = field(default_factory=list)  # every run's, for an ensemble
    result_file: str = "denoised.png"
    choices: list[torch.Tensor] = field(default_factory=list)  # every run's chosen image (the result averages those of the runs that finished)


def restore(request: RestoreRequest, callbacks: Sequence[Callback] = ()) -> RestoreRun:
    """Run one restoration fit (or an ensemble of ``request.n_runs`` fits) and write its run directory.

    The directory holds the result — ``denoised.png`` for denoising, ``restored.png`` for the
    other tasks: the image the early-stopping rule chose, or without a rule the last step's
    (its EMA where the preset keeps one); for an ensemble the mean of the runs' choices, each
    also kept as ``…-run-K.png`` — and the measurement (``noisy.png``, ``masked.png`` with
    ``mask.png``, ``low-resolution.png`` or ``blurred.png``), ``final.png`` (the output at the
    last step fitted), ``ema.png``, ``best.png`` (when a clean image is known), ``metrics.csv``,
    ``losses.csv``, ``curves.png`` (these of the first run; with ``spectra`` also
    ``spectral.csv``/``.npz`` and ``spectrum.png``, the per-band error against the clean image),
    ``run.json`` (its ``stopping``
    section records the rule, the chosen step and why, per run for an ensemble) and
    ``report.html`` (all of it on one self-contained page, :mod:`dipscope.report`).
    ``request.steps`` is the maximum when a rule is on.

    Every setting, the input files and the output directory are checked before the first step.
    A fit interrupted (Ctrl-C, SIGTERM) is still written, with status ``interrupted`` — into
    ``request.out`` if that was empty, else beside it (``OUT.interrupted-TIME``): an interrupted
    run never replaces a finished one.
    """
    request.validate()
    writer = RunWriter(request.out, force=request.force)  # refuses an existing run before any work
    spec, config = resolve(request)
    image = read_image(request.image)
    m = measure(request.task, image, given=request.given, clean_path=request.clean, sigma=request.sigma,
                noise_seed=request.seed if request.noise_seed is None else request.noise_seed,
                mask_path=request.mask, drop=request.drop, factor=request.factor, kernel=request.kernel)
    check_inputs(spec, m.target, config, m.clean, m.operator)

    from .stopping import DEFAULT_RETURN_EMA, EarlyStopping, make_rule

    return_ema = DEFAULT_RETURN_EMA if request.stop_ema is None else request.stop_ema
    seeds = [config.seed + k for k in range(request.n_runs)]
    stoppers: list[EarlyStopping | None] = [None] * len(seeds)
    rule = request.stop if request.stop != "auto" or m.noisy else "none"
    if rule != "none":
        stop_sigma = None if request.stop_sigma is None else request.stop_sigma / 255.0
        operator = None if request.task == "denoise" else m.operator
        stoppers = [EarlyStopping(make_rule(rule), m.target, sigma=stop_sigma, return_ema=return_ema,
                                  operator=operator) for _ in seeds]
    if request.spectra and m.clean is None:
        raise DipscopeError("--spectra needs the clean image (IMAGE itself, or --clean for a given measurement)")
    spectra = SpectralObserver({"clean": m.clean}) if request.spectra else None
    per_run = [[*([s] if s is not None else []), *([spectra] if spectra and k == 0 else []), *callbacks]
               for k, s in enumerate(stoppers)]
    results = fit_runs(spec, m.target, config, seeds=seeds, clean=m.clean, operator=m.operator, callbacks=per_run)
    with interrupts.deferred():  # from here on a signal must not throw away the finished fit
        why = None if rule != "none" or request.stop == "none" else "the measurement holds no noise to overfit"
        chosen = [_choice(stopper, result, return_ema, request.stop, why) for stopper, result in zip(stoppers, results)]
        for image_k, stop_k in chosen:
            stop_k["max_steps"] = config.steps
            stop_k["result_psnr"] = _psnr_or_none(image_k, m.clean)
        interrupted = any(r.interrupted for r in results) or len(results) < len(seeds)
        complete = [c for c, r in zip(chosen, results) if not r.interrupted] or chosen[:1]
        restored, stopping = complete[0] if len(complete) == 1 else _ensemble(complete, seeds, m.clean)
        stopping["interrupted"] = interrupted
        if len(seeds) > 1:
            stopping["runs_requested"] = len(seeds)
            stopping["runs_averaged"] = len(complete)
        return _write(writer, request, spec, config, image, m, results, chosen, restored, stopping, interrupted,
                      spectra)


def _write(writer: RunWriter, request: RestoreRequest, spec: ModelSpec, config: FitConfig, image: torch.Tensor,
           m: Measurement, results: list[FitResult], chosen: list[tuple[torch.Tensor, dict[str, Any]]],
           restored: torch.Tensor, stopping: dict[str, Any], interrupted: bool,
           spectra: SpectralObserver | None = None) -> RestoreRun:
    """Write the run directory (beside a finished run when ``interrupted``) and return what was made."""
    result = results[0]
    kept = None
    if interrupted and writer.holds_something():
        kept, writer = writer.out, writer.beside("interrupted")
    result_file = RESULT_FILES[request.task]
    with writer as tmp:
        write_image(tmp / result_file, restored)
        if len(chosen) > 1:
            for k, (image_k, _) in enumerate(chosen):
                write_image(tmp / result_file.replace(".png", f"-run-{k}.png"), image_k)
        write_image(tmp / MEASUREMENT_FILES[request.task], m.target)
        for name, extra in m.extra_images.items():
            write_image(tmp / name, extra)
        write_image(tmp / "final.png", result.final)
        if result.ema is not None:
            write_image(tmp / "ema.png", result.ema)
        if result.best is not None:
            write_image(tmp / "best.png", result.best)
        write_csv(tmp / "metrics.csv", result.history)
        write_csv(tmp / "losses.csv", ({"step": i, "loss": float(v)} for i, v in enumerate(result.losses)))
        title = f"{request.image.name}: {request.task}, {spec.family}, preset {request.preset_name}"
        fit_curves(result.losses, result.history, tmp / "curves.png", title)
        if spectra is not None and spectra.steps:
            spectra.save(tmp)
            band_heatmap(spectra.table("clean"), spectra.steps, spectra.edges.numpy(), tmp / "spectrum.png",
                         f"{title}: per-band error against the clean image", tau=spectra.tau)
        record = run_record(
            status="interrupted" if interrupted else "complete",
            task=request.task,
            image={"path": str(request.image), "sha256": sha256_file(request.image), "shape": list(image.shape)},
            degradation=m.record,
            measurement_psnr=_psnr_or_none(m.target, m.clean) if m.clean is not None and m.target.shape == m.clean.shape else None,
            preset=request.preset_name,
            model=spec_to_dict(spec),
            fit={**asdict(config), "precision_resolved": result.precision},
            seed=config.seed,
            device=result.device,
            result=result.summary(),
            stopping=stopping,
            **({"ensemble": [r.summary() for r in results]} if len(results) > 1 else {}),
        )
        add_run_report(tmp, record, m.clean, str(request.clean) if request.given else f"the input {request.image}")
        write_json(tmp / "run.json", record)
        out = writer.commit()
    return RestoreRun(out, result, stopping, kept, results, result_file, [image for image, _ in chosen])


def _choice(stopper: Any, result: FitResult, return_ema: bool, requested: str,
            why_none: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """One run's result image and its ``stopping`` record: the rule's choice, or without a rule
    the EMA (or output) at the last step."""
    if stopper is not None and stopper.choice is not None:
        return stopper.choice.image, {"requested": requested, **stopper.choice.summary()}
    use_ema = return_ema and result.ema is not None
    source = "EMA" if use_ema else "output"
    reason = f"no early stopping ({why_none}): the {source} at the last step" if why_none else \
        f"no early stopping: the {source} at the last step"
    return (result.ema if use_ema else result.final), {
        "requested": requested, "rule": None, "step": result.steps_done, "source": source.lower(),
        "stopped_early": False, "reason": reason}


def _ensemble(chosen: list[tuple[torch.Tensor, dict[str, Any]]], seeds: list[int],
              clean: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The mean of the runs' chosen images (the DIP paper's averaging over restarts) and its record."""
    mean = torch.stack([image for image, _ in chosen]).mean(dim=0)
    first = chosen[0][1]
    return mean, {"requested": first["requested"], "rule": first["rule"], "source": f"mean of {len(chosen)} runs",
                  "step": max(s["step"] for _, s in chosen), "max_steps": first["max_steps"],
                  "stopped_early": all(s["stopped_early"] for _, s in chosen),
                  "sigma_255": first.get("sigma_255"), "sigma_given": first.get("sigma_given"),
                  "seeds": seeds[:len(chosen)], "result_psnr": _psnr_or_none(mean, clean),
                  "reason": f"the mean of the {len(chosen)} runs' chosen images", "runs": [s for _, s in chosen]}


def _psnr_or_none(target: torch.Tensor, clean: torch.Tensor | None) -> float | None:
    from .metrics import psnr

    return None if clean is None else psnr(target, clean)


# The names of the denoising-only first version, kept for notebooks and scripts that use them.
DenoiseRequest = RestoreRequest
DenoiseRun = RestoreRun
denoise = restore
