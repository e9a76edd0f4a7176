"""What ``dipscope denoise`` and ``dipscope restore`` run: check the options, refuse an
output directory that holds a run, read the files, make the measurement, call
:func:`dipscope.restore` and save the run directory (:meth:`~dipscope.Restoration.save`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..datasets import sha256_file
from ..errors import DipscopeError
from ..fit import Callback
from ..images import read_image
from ..metrics import psnr
from ..models import ModelSpec
from ..physics import parse_blur
from ..presets import default_runs, preset
from ..restoration import Restoration, restore
from ..runs.rundir import RunWriter
from ..tasks import DEFAULT_PRESETS, TASKS, measure


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
    runs: int | None = None  # fit this many seeds (seed, seed + 1, …) and return the mean of their results (None: the preset's)
    task: str = "denoise"
    mask: Path | None = None  # inpaint: white = known
    drop: float | None = None  # inpaint: fraction of values dropped at random
    factor: int | None = None  # superres
    kernel: str | None = None  # deblur: gaussian:STD or box:SIZE
    spectra: bool = False  # record the per-band error against the clean image (spectral.csv, spectrum.png)

    def __post_init__(self) -> None:
        for name in ("image", "out", "clean", "mask"):  # a path given as a str is a path
            if isinstance(getattr(self, name), str):
                setattr(self, name, Path(getattr(self, name)))

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
        from ..stopping import RULES

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


def network(request: RestoreRequest) -> ModelSpec:
    """The preset's architecture of ``request.model``, with the user's width and levels."""
    width = 128 if request.linear_width is None else request.linear_width
    spec, _ = preset(request.preset_name, request.model, width)
    return spec if request.levels is None else spec.with_levels(request.levels)


def settings(request: RestoreRequest) -> dict[str, Any]:
    """The fit settings the user gave (the preset's stand for the rest)."""
    given = {name: getattr(request, name) for name in ("lr", "precision", "channels_last")}
    return {**{k: v for k, v in given.items() if v is not None}, **request.overrides}


@dataclass
class Saved:
    """A run made and saved: the :class:`~dipscope.Restoration`, where it went, and the finished
    run that an interrupted ``--force`` run did not replace (else None)."""

    restoration: Restoration
    out: Path
    kept: Path | None = None


def run(request: RestoreRequest, callbacks: Sequence[Callback] = ()) -> Saved:
    """Check, read, fit (:func:`dipscope.restore`) and save; nothing is written before the fit
    and an output directory that holds a run is refused (without ``force``) before any work."""
    request.validate()
    writer = RunWriter(request.out, force=request.force,  # refuses an existing run before any work
                       inputs=(request.image, request.clean, request.mask))
    image = read_image(request.image)
    m = measure(request.task, image, given=request.given, clean_path=request.clean, sigma=request.sigma,
                noise_seed=request.seed if request.noise_seed is None else request.noise_seed,
                mask_path=request.mask, drop=request.drop, factor=request.factor, kernel=request.kernel)
    if request.spectra and m.clean is None:
        raise DipscopeError("--spectra needs the clean image (IMAGE itself, or --clean for a given measurement)")
    source = {"path": str(request.image), "sha256": sha256_file(request.image), "shape": list(image.shape)}
    measured = psnr(m.target, m.clean) if m.clean is not None and m.target.shape == m.clean.shape else None
    restoration = restore(m.target, m.operator, clean=m.clean,
                          sigma=request.stop_sigma, preset=request.preset_name, runs=request.n_runs,
                          stop=request.stop, steps=request.steps, seed=request.seed, device=request.device,
                          network=network(request), settings=settings(request), noisy=m.noisy,
                          spectra=request.spectra, callbacks=callbacks,
                          record={"task": request.task, "image": source, "degradation": m.record,
                                  "measurement_psnr": measured})
    kept = writer.out if restoration.interrupted and writer.holds_something() else None
    return Saved(restoration, restoration.save(writer), kept)
