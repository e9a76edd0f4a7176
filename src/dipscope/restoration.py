"""The Python front door: :func:`denoise`, :func:`restore` and :func:`add_noise` take what a
notebook holds and return a :class:`Restoration` in the caller's kind of image.

``dipscope denoise`` and ``dipscope restore`` call these very functions (after reading the
files) and then :meth:`Restoration.save` the run directory; nothing here reads a file.

The objective is the Deep Image Prior's, ``min_θ ||A(f_θ(z)) − y||² / N`` (:mod:`dipscope.fit`);
the returned image is the stopping rule's choice of each run, averaged over the runs
(:func:`dipscope.stopping.outcome`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import interrupts
from .arrays import ImageKind, as_caller, as_tensor
from .callbacks import ProgressBar, SpectralObserver
from .errors import DipscopeError
from .fit import Callback, FitConfig, FitResult, check_inputs, fit_runs
from .images import write_image
from .models import LinearSpec, ModelSpec, NetworkSpec, ReLUNetSpec, SkipSpec, as_spec, spec_to_dict
from .physics import GaussianNoise, Identity, Mask, Operator
from .presets import default_runs, preset as preset_settings
from .runs.rundir import RunWriter, run_record, write_csv, write_json
from .runtime import resolve_device
from .tasks import DEFAULT_PRESETS, MEASUREMENT_FILES, RESULT_FILES, TASKS, extra_images, task_of

MODELS = ("skip", "linear", "relunet")


def add_noise(clean: Any, sigma: float, *, seed: int = 0) -> Any:
    """``clean`` plus Gaussian noise of std ``sigma`` on the 0–255 scale, clipped to [0, 1].

    Parameters
    ----------
    clean : the image (NumPy (H, W)/(H, W, C), torch (C, H, W) or PIL; uint8 or floats in [0, 1]).
    sigma : the noise's standard deviation, 0–255 scale (25 is σ = 25/255 on [0, 1]).
    seed : seeds the noise (:class:`dipscope.physics.GaussianNoise`): the same seed, the same noise.

    Returns
    -------
    The noisy image in the caller's type, dtype and layout (a ``uint8`` image is rounded).

    Examples
    --------
    >>> import numpy as np, dipscope
    >>> noisy = dipscope.add_noise(np.full((8, 8), 128, np.uint8), 25, seed=0)
    >>> noisy.dtype, noisy.shape
    (dtype('uint8'), (8, 8))
    """
    _number("sigma", sigma, low=0.0)
    _integer("seed", seed, low=0)
    image, kind = as_tensor(clean, "clean")
    if sigma > 0:
        image = GaussianNoise(sigma / 255.0, seed)(image, clip=True).clamp(0, 1)
    return as_caller(image, kind)


def denoise(noisy: Any, *, clean: Any = None, sigma: float | None = None, preset: str = "dipscope",
            runs: int | None = None, stop: str = "auto", steps: int | None = None, seed: int = 0,
            device: str = "auto", progress: bool = False, network: Any = None,
            settings: Mapping[str, Any] | None = None, spectra: bool = False,
            callbacks: Sequence[Callback] = (), record: Mapping[str, Any] | None = None) -> "Restoration":
    """Denoise ``noisy`` with the Deep Image Prior: :func:`restore` with the identity operator.

    Parameters
    ----------
    noisy : the noisy image: NumPy (H, W) or (H, W, C), torch (C, H, W) or PIL; C = 1 or 3;
        uint8, or floats in [0, 1].
    clean : the clean image, if known (same kind of input): adds PSNR to ``history`` and ``psnr``.
    sigma : the noise's std on the 0–255 scale, if known; the stopping rule otherwise estimates it.
    preset : named settings (:mod:`dipscope.presets`); ``dipscope`` fits 3 runs and averages them.
    runs : fit this many seeds (``seed``, ``seed + 1``, …) and average their chosen images
        (None: the preset's).
    stop : ``auto`` (the default rule), ``none`` (run every step) or a rule of :mod:`dipscope.stopping`.
    steps : the maximum number of Adam steps (None: the preset's).
    seed : seeds the network, its input and its input noise.
    device : ``auto`` (cuda → mps → cpu), ``cpu``, ``cuda[:i]`` or ``mps``.
    progress : show a progress bar.
    network, settings, spectra, callbacks, record : as for :func:`restore`.

    Returns
    -------
    Restoration
        ``.image`` in the kind of ``noisy``; ``.psnr`` and ``.history["psnr"]`` with ``clean``.

    Examples
    --------
    >>> import numpy as np, dipscope
    >>> clean = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))
    >>> r = dipscope.denoise(dipscope.add_noise(clean, 25), clean=clean, steps=20, runs=1,
    ...                      network="skip", settings={"observe_every": 10}, preset="dipscope",
    ...                      device="cpu") # doctest: +SKIP
    >>> r.image.dtype, r.image.shape  # doctest: +SKIP
    (dtype('uint8'), (32, 32))
    """
    return _restore(noisy, "noisy", Identity(), clean=clean, sigma=sigma, preset=preset, runs=runs, stop=stop,
                    steps=steps, seed=seed, device=device, progress=progress, network=network, settings=settings,
                    noisy=True, spectra=spectra, callbacks=callbacks, record=record)


def restore(measurement: Any, operator: Any = None, *, clean: Any = None, sigma: float | None = None,
            preset: str | None = None, runs: int | None = None, stop: str = "auto", steps: int | None = None,
            seed: int = 0, device: str = "auto", progress: bool = False, network: Any = None,
            settings: Mapping[str, Any] | None = None, noisy: bool | None = None, spectra: bool = False,
            callbacks: Sequence[Callback] = (), record: Mapping[str, Any] | None = None) -> "Restoration":
    """Restore ``measurement`` = ``A(x) + n`` with the Deep Image Prior: fit ``f_θ(z)`` so that
    ``A(f_θ(z))`` matches it, stop each run by the rule, and average the runs.

    Parameters
    ----------
    measurement : the measurement ``y`` (NumPy (H, W)/(H, W, C), torch (C, H, W) or PIL;
        uint8, or floats in [0, 1]).
    operator : the forward operator ``A``: a :class:`dipscope.physics.Operator` (``Mask``,
        ``Downsample``, ``Blur``, …; None: the identity) or a deepinv ``Physics`` (any object
        with ``A(x)``; :class:`dipscope.interop.PhysicsOperator`).
    clean : the clean image ``x`` of ``A``'s domain shape, if known: adds PSNR.
    sigma : the measurement's noise std (0–255) the stopping rule assumes (None: estimated).
    preset : named settings (None: the task's default, :data:`dipscope.tasks.DEFAULT_PRESETS`).
    runs, stop, steps, seed, device, progress : as for :func:`denoise`.
    network : ``skip`` (the DIP, the default), ``linear`` or ``relunet``, a spec of
        :mod:`dipscope.models` (e.g. ``SkipSpec().with_levels(3)``), or any ``torch.nn.Module``
        (or a callable ``make(shape)`` that makes one; :class:`dipscope.models.NetworkSpec` to
        give it its input), fitted with the preset's DIP settings.
    settings : fit settings that replace the preset's (fields of :class:`dipscope.fit.FitConfig`,
        e.g. ``{"lr": 0.005, "precision": "fp32"}``).
    noisy : whether ``y`` holds noise the network would end up fitting, so that ``stop="auto"``
        runs the default rule (None: yes, except for a mask or a downsampling, see
        :mod:`dipscope.tasks`).
    spectra : record the per-band error against ``clean`` over the fit (``Restoration.spectra``).
    callbacks : more observers, given to every run.
    record : sections added to the run record (``run.json``), e.g. where ``y`` came from.

    Returns
    -------
    Restoration
        ``.image`` in the kind of ``measurement``, at ``A``'s domain shape.
    """
    return _restore(measurement, "measurement", operator, clean=clean, sigma=sigma, preset=preset, runs=runs,
                    stop=stop, steps=steps, seed=seed, device=device, progress=progress, network=network,
                    settings=settings, noisy=noisy, spectra=spectra, callbacks=callbacks, record=record)


def _restore(measurement: Any, name: str, operator: Any, *, clean: Any, sigma: float | None, preset: str | None,
             runs: int | None, stop: str, steps: int | None, seed: int, device: str, progress: bool, network: Any,
             settings: Mapping[str, Any] | None, noisy: bool | None, spectra: bool, callbacks: Sequence[Callback],
             record: Mapping[str, Any] | None) -> "Restoration":
    """Check every argument, then fit and choose (:func:`_fit`)."""
    target, kind = as_tensor(measurement, name)
    reference = None if clean is None else as_tensor(clean, "clean")[0]
    op = as_operator(operator)
    task = task_of(op)
    preset_name = preset if preset is not None else DEFAULT_PRESETS.get(task, "ulyanov2018")
    _number("sigma", sigma, low=0.0, strict=True)
    for what, value, low in (("runs", runs, 1), ("steps", steps, 1), ("seed", seed, 0)):
        _integer(what, value, low)
    spec, config = network_and_config(network, preset_name, settings, steps=steps, seed=seed, device=device)
    n_runs = runs if runs is not None else default_runs(preset_name, spec.family)
    from .stopping import RULES

    if stop not in ("auto", "none", *RULES):
        raise DipscopeError(f"unknown stop {stop!r}; choose auto, none or one of {', '.join(RULES)}")
    if isinstance(op, Mask) and stop not in ("auto", "none"):
        raise DipscopeError("no stopping rule reads masked measurements yet: use stop='auto' or 'none' with a mask")
    if spectra and reference is None:
        raise DipscopeError("spectra needs the clean image (clean)")
    check_inputs(spec, target, config, reference, op)
    noisy = (task in ("denoise", "deblur") or task not in TASKS) if noisy is None else noisy
    extra = [*callbacks, *([ProgressBar(f"{spec.family} {task}")] if progress else [])]
    return _fit(target, kind, op, reference, spec, config, n_runs=n_runs, stop=stop,
                sigma=sigma, noisy=noisy and not isinstance(op, Mask), spectra=spectra, callbacks=extra,
                preset_name=preset_name, record=dict(record or {}))


def as_operator(operator: Any) -> Operator:
    """``operator`` as a dipscope :class:`~dipscope.physics.Operator` (None: the identity; an
    object with ``A(x)``, such as a deepinv ``Physics``: :class:`~dipscope.interop.PhysicsOperator`)."""
    if operator is None:
        return Identity()
    if isinstance(operator, Operator):
        return operator
    if callable(getattr(operator, "A", None)):
        from .interop import PhysicsOperator

        return PhysicsOperator(operator)
    raise DipscopeError(f"operator must be a dipscope.physics.Operator or a deepinv Physics (with A(x)), not "
                        f"{type(operator).__name__}")


def network_and_config(network: Any, preset_name: str, settings: Mapping[str, Any] | None = None, *,
                       steps: int | None = None, seed: int = 0, device: str = "auto") -> tuple[ModelSpec, FitConfig]:
    """The architecture and fit settings: the preset's for the network's family, then ``settings``,
    ``steps``, ``seed`` and ``device``."""
    if network is None or isinstance(network, str):
        family = network or "skip"
        if family not in MODELS:
            raise DipscopeError(f"unknown network {family!r}; choose one of {', '.join(MODELS)} or give a ModelSpec")
        spec, config = preset_settings(preset_name, family)
    elif isinstance(network, (SkipSpec, LinearSpec, ReLUNetSpec)):
        spec, config = network, preset_settings(preset_name, network.family)[1]
    else:  # a user's network: the preset's DIP fit settings
        spec, config = as_spec(network), preset_settings(preset_name, "skip")[1]
        if not isinstance(spec, NetworkSpec):
            raise DipscopeError(f"network must be a model name ({', '.join(MODELS)}), a ModelSpec, a torch.nn.Module "
                                f"or a callable that makes one, not {type(network).__name__}")
    updates = dict(settings or {})
    unknown = sorted(set(updates) - set(asdict(config)))
    if unknown:
        raise DipscopeError(f"settings: unknown fit settings {', '.join(unknown)}; see dipscope.FitConfig")
    updates.update(device=device, seed=seed, **({"steps": steps} if steps is not None else {}))
    config = replace(config, **updates)
    config.validate()
    if config.cuda_graph and resolve_device(config.device).type != "cuda":
        raise DipscopeError(f"cuda_graph needs a CUDA device, not {config.device!r}")
    return spec, config


def _fit(target: torch.Tensor, kind: ImageKind, op: Operator, clean: torch.Tensor | None, spec: ModelSpec,
         config: FitConfig, *, n_runs: int, stop: str, sigma: float | None, noisy: bool, spectra: bool,
         callbacks: Sequence[Callback], preset_name: str, record: dict[str, Any]) -> "Restoration":
    """Fit the runs, choose the result and make the run record (the arguments are checked)."""
    from .stopping import DEFAULT_RETURN_EMA, EarlyStopping, make_rule, outcome

    task = task_of(op)
    seeds = [config.seed + k for k in range(n_runs)]
    rule = stop if stop != "auto" or noisy else "none"
    stoppers: list[EarlyStopping | None] = [None] * n_runs
    if rule != "none":
        stoppers = [EarlyStopping(make_rule(rule), target, sigma=None if sigma is None else sigma / 255.0,
                                  return_ema=DEFAULT_RETURN_EMA, operator=None if task == "denoise" else op)
                    for _ in seeds]
    observer = SpectralObserver({"clean": clean}) if spectra else None
    per_run = [[*([s] if s is not None else []), *([observer] if observer and k == 0 else []), *callbacks]
               for k, s in enumerate(stoppers)]
    results = fit_runs(spec, target, config, seeds=seeds, clean=clean, operator=op, callbacks=per_run)
    with interrupts.deferred():  # from here on a signal must not throw away the finished fit
        why = None if rule != "none" or stop == "none" else "the measurement holds no noise to overfit"
        out = outcome(stoppers, results, seeds, return_ema=DEFAULT_RETURN_EMA, max_steps=config.steps, clean=clean,
                      requested=stop, why_none=why)
        if not all(bool(torch.isfinite(image_k).all()) for image_k in out.chosen):
            raise DipscopeError(f"the fit diverged: its output holds NaN or infinite values (learning rate "
                                f"lr = {config.lr:g}); choose a smaller lr")
        from .metrics import psnr

        first = results[0]
        full = {
            "status": "interrupted" if out.interrupted else "complete", "task": task,
            "image": {"source": kind.library, "shape": list(target.shape)},
            "degradation": {"kind": "given", "operator": type(op).__name__.lower()},
            "measurement_psnr": psnr(target, clean) if clean is not None and target.shape == clean.shape else None,
            "preset": preset_name, "model": spec_to_dict(spec),
            "fit": {**asdict(config), "precision_resolved": first.precision}, "seed": config.seed,
            "device": first.device, "result": first.summary(), "stopping": out.stopping,
            **({"ensemble": [r.summary() for r in results]} if len(results) > 1 else {}),
        }
        full.update(record)
        return Restoration(image=as_caller(out.image, kind), tensor=out.image, measurement=target, clean=clean,
                           operator=op, results=list(results), chosen=out.chosen, stopping=out.stopping,
                           record=run_record(**full), kind=kind, spectra=observer)


@dataclass
class Restoration:
    """What :func:`denoise`/:func:`restore` made, in memory.

    Attributes
    ----------
    image : the result in the caller's kind of image (type, dtype, layout).
    tensor : the result as the library holds it, (C, H, W) float32 in [0, 1] (not clipped).
    measurement, clean : the fitted ``y`` and the reference (None when not given), (C, H, W).
    results : every run's :class:`dipscope.fit.FitResult` (in seed order).
    chosen : every run's chosen image; ``tensor`` is the mean of those of the finished runs.
    stopping : how the image was chosen (``run.json``'s ``stopping``).
    record : everything ``run.json`` holds.
    """

    image: Any
    tensor: torch.Tensor
    measurement: torch.Tensor
    clean: torch.Tensor | None
    operator: Operator
    results: list[FitResult]
    chosen: list[torch.Tensor]
    stopping: dict[str, Any]
    record: dict[str, Any]
    kind: ImageKind
    spectra: SpectralObserver | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        return self.record["task"]

    @property
    def interrupted(self) -> bool:
        return bool(self.stopping.get("interrupted"))

    @property
    def psnr(self) -> float | None:
        """PSNR (dB) of the result against ``clean`` (None without it)."""
        return self.stopping.get("result_psnr")

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Each run: its seed, the steps it ran, the step of its image, the rule, the reason, its PSNR."""
        records = self.stopping.get("runs", [self.stopping])
        return [{"seed": r.seed, "steps_done": r.steps_done, "interrupted": r.interrupted,
                 **{k: rec.get(k) for k in ("step", "rule", "source", "stopped_early", "reason", "result_psnr")}}
                for r, rec in zip(self.results, records)]

    @property
    def history(self) -> dict[str, np.ndarray]:
        """The first run's observations as columns: ``step``, ``loss`` and, with ``clean``,
        ``psnr`` and ``psnr_ema`` (and ``ssim``, ``seconds``; NaN where a row lacks one)."""
        rows = self.results[0].history
        names = list(dict.fromkeys(k for row in rows for k in row))
        return {k: np.array([row.get(k, math.nan) for row in rows], dtype=np.float64) for k in names}

    def save(self, directory: str | Path | RunWriter, *, force: bool = False) -> Path:
        """Write the run directory and return where it went.

        It holds the result (``denoised.png`` for denoising, ``restored.png`` otherwise; for an
        ensemble also each run's ``…-run-K.png``), the measurement (``noisy.png``,
        ``masked.png`` with ``mask.png``, ``low-resolution.png``, ``blurred.png`` or
        ``measurement.png``), the first run's ``final.png``, ``ema.png``, ``best.png`` (with a
        clean image), ``metrics.csv``, ``losses.csv``, ``curves.png`` (and with spectra
        ``spectral.csv``/``.npz``, ``spectrum.png``), ``report.html`` (all of it on one self-contained
        page, :mod:`dipscope.report`) and ``run.json`` (:attr:`record`), written
        last and atomically (:class:`dipscope.runs.rundir.RunWriter`: an existing run is
        replaced only with ``force``). An interrupted result never replaces a finished run: it
        goes beside it (``NAME.interrupted-TIME``). A stop signal that arrives while saving is
        deferred until the run directory is complete.
        """
        from .plots import band_heatmap, fit_curves
        from .report import add_run_report

        with interrupts.deferred():  # a stop signal while saving must not lose the finished fit
            writer = directory if isinstance(directory, RunWriter) else RunWriter(directory, force=force)
            if self.interrupted and writer.holds_something():
                writer = writer.beside("interrupted")
            result, task = self.results[0], self.task
            result_file = RESULT_FILES.get(task, "restored.png")
            with writer as tmp:
                write_image(tmp / result_file, self.tensor)
                if len(self.chosen) > 1:
                    for k, image_k in enumerate(self.chosen):
                        write_image(tmp / result_file.replace(".png", f"-run-{k}.png"), image_k)
                write_image(tmp / MEASUREMENT_FILES.get(task, "measurement.png"), self.measurement)
                for name, extra in extra_images(self.operator).items():
                    write_image(tmp / name, extra)
                write_image(tmp / "final.png", result.final)
                if result.ema is not None:
                    write_image(tmp / "ema.png", result.ema)
                if result.best is not None:
                    write_image(tmp / "best.png", result.best)
                write_csv(tmp / "metrics.csv", result.history)
                write_csv(tmp / "losses.csv", ({"step": i, "loss": float(v)} for i, v in enumerate(result.losses)))
                title = self.title()
                fit_curves(result.losses, result.history, tmp / "curves.png", title)
                if self.spectra is not None and self.spectra.steps:
                    self.spectra.save(tmp)
                    band_heatmap(self.spectra.table("clean"), self.spectra.steps, self.spectra.edges.numpy(),
                                 tmp / "spectrum.png", f"{title}: per-band error against the clean image",
                                 tau=self.spectra.tau)
                add_run_report(tmp, self.record, self.clean, self.clean_label())
                write_json(tmp / "run.json", self.record)
                return writer.commit()

    def clean_label(self) -> str:
        """Where the clean reference came from, for the report's caption."""
        image = self.record.get("image", {})
        given = self.record.get("degradation", {}).get("kind") == "given"
        path = image.get("path") if isinstance(image, dict) else None
        return "the clean image" if given or not path else f"the input {path}"

    def title(self) -> str:
        """What the figures name: the image, the task, the model and the preset."""
        path = self.record.get("image", {}).get("path")
        return (f"{Path(path).name if path else 'image'}: {self.task}, {self.record['model'].get('family')}, "
                f"preset {self.record['preset']}")

    def plot(self) -> Any:
        """A matplotlib figure for a notebook: the measurement, the result (and the clean image),
        and the first run's loss and PSNR over the steps. It uses the caller's pyplot backend."""
        import matplotlib.pyplot as plt

        from .plots import display_array

        images = [("measurement", self.measurement), ("result" + (f" {self.psnr:.2f} dB" if self.psnr else ""),
                                                      self.tensor)]
        if self.clean is not None:
            images.append(("clean", self.clean))
        fig, axes = plt.subplots(1, len(images) + 1, figsize=(3.2 * (len(images) + 1), 3.4))
        for ax, (label, image) in zip(axes, images):
            a = display_array(image)
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(label)
            ax.set_axis_off()
        history, ax = self.history, axes[-1]
        ax.semilogy(history["step"], history["loss"], color="C0")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if "psnr" in history:
            twin = ax.twinx()
            twin.plot(history["step"], history["psnr"], color="C1", label="output")
            if "psnr_ema" in history:
                twin.plot(history["step"], history["psnr_ema"], color="C2", label="EMA")
            twin.set_ylabel("PSNR (dB)")
            twin.legend(loc="lower right")
        fig.suptitle(self.title())
        fig.tight_layout()
        return fig


def _number(name: str, value: float | None, low: float, strict: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low \
            or (strict and value == low):
        raise DipscopeError(f"{name} must be a finite number {'>' if strict else '≥'} {low:g}, not {value!r}")


def _integer(name: str, value: int | None, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DipscopeError(f"{name} must be an integer ≥ {low}, not {value!r}")
