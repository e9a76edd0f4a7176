"""What every experiment shares: model choices by name, profiles, inputs and report helpers.

An experiment expands into independent *tasks* (:class:`dipscope.runs.Task`: one fit, or one
group of fits, each with its own run directory under the experiment's output directory) and
runs them with :func:`dipscope.runs.run_tasks`, which skips the finished ones and resumes a
killed sweep.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import DipscopeError
from ..fit import FitConfig, check_inputs
from ..models import ModelSpec, as_spec, spec_to_dict
from ..presets import preset

PROFILES = ("smoke", "cpu", "paper")


def model_choice(name: str, profile: str, networks: Mapping[str, Any] | None = None, *,
                 recover: bool = False) -> tuple[ModelSpec, FitConfig]:
    """The study's settings (``chakrabarty2019``) for model ``name``, scaled to ``profile``.

    A name of ``networks`` is a user's network (a ``torch.nn.Module``, a callable that makes one,
    or a :class:`~dipscope.models.NetworkSpec`), fitted with the DIP's settings of the profile.

    Names: ``dip``, ``linear-N`` (DIP-Linear of width N), ``relunet``; a name may end in
    ``:lr=X`` to change the learning rate (e.g. ``linear-2048:lr=1e-4``: a column of our own,
    not the study's setting).

    * ``paper`` — the study's model settings as published. The study published scripts for the
      denoising table and the two-run trajectory only; an experiment that runs them for another
      claim makes its own choices of inputs and measures (each says so).
    * ``cpu`` — what 2 CPU cores finish in minutes per image: DIP with 64 instead of 256
      channels per level; ReLUNet 2 000 instead of 30 000 steps. Experiments may reduce
      further (their own steps or crops): each says so in its docstring.
    * ``smoke`` — seconds: tiny widths and a few dozen steps (for tests).

    No profile resets the weights after a loss jump: the study's scripts have no divergence
    recovery. ``recover=True`` turns the fit loop's recovery on (``FitConfig.recover_divergence``)
    — an explicit choice that lands in each run's recorded settings, with the steps it fired at
    in the run's summary (``recoveries``).
    """
    if profile not in PROFILES:
        raise DipscopeError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if networks and name in networks:
        return as_spec(networks[name]), model_choice("dip", profile, recover=recover)[1]
    base, _, option = name.partition(":")
    spec, config = _study_model(base, profile)
    config = replace(config, recover_divergence=bool(recover))
    if option:
        key, _, value = option.partition("=")
        try:
            lr = float(value)
        except ValueError:
            lr = math.nan
        if key != "lr" or not (lr > 0 and math.isfinite(lr)):
            raise DipscopeError(f"bad model option {option!r} in {name!r}; the one option is lr=X with X > 0, "
                                "e.g. linear-2048:lr=1e-4")
        config = replace(config, lr=lr)
    return spec, config


def _study_model(name: str, profile: str) -> tuple[ModelSpec, FitConfig]:
    if name == "dip":
        spec, config = preset("chakrabarty2019", "skip")
        if profile == "cpu":
            spec = replace(spec, channels_down=(64,) * 5, channels_up=(64,) * 5)
        elif profile == "smoke":
            spec = replace(spec, channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
            config = replace(config, steps=40, lr=0.01, observe_every=5)
    elif name.startswith("linear-"):
        try:
            width = int(name.split("-", 1)[1])
        except ValueError:
            raise DipscopeError(f"bad model name {name!r}; DIP-Linear is linear-N with an integer width N") from None
        spec, config = preset("chakrabarty2019", "linear", linear_width=width)
        if profile == "smoke":
            spec = replace(spec, width=min(width, 16), levels=2)
            config = replace(config, steps=40, observe_every=5)
    elif name == "relunet":
        spec, config = preset("chakrabarty2019", "relunet")
        if profile == "cpu":
            config = replace(config, steps=2000)
        elif profile == "smoke":
            spec = replace(spec, hidden=16, depth=3)
            config = replace(config, steps=40, pixel_batch=256, lr=1e-2, observe_every=5)
    else:
        raise DipscopeError(f"unknown model {name!r}; choose dip, linear-N or relunet")
    return spec, config


def fit_check(name: str, spec: ModelSpec, image: torch.Tensor, config: FitConfig, bands: int | None = None):
    """A task's check (:attr:`dipscope.runs.Task.check`): the fit can run on ``image``
    (:func:`~dipscope.fit.check_inputs`) and, with ``bands``, each of that many frequency rings
    holds at least one of the image's frequencies (an empty ring has no error to measure)."""

    def check() -> None:
        _, h, w = image.shape
        try:
            check_inputs(spec, image, config)
        except DipscopeError as e:
            raise DipscopeError(f"{name} ({h}×{w} px as fitted): {e}") from None
        if bands is not None:
            from ..spectral import band_masks

            empty = int((~band_masks(h, w, bands)[0].flatten(1).any(dim=1)).sum())
            if empty:
                raise DipscopeError(f"{name} is {h}×{w} px as fitted, too small for {bands} frequency bands: "
                                    f"{empty} of them hold no frequency; give a larger image or fewer bands")

    return check


def describe(spec: ModelSpec, config: FitConfig) -> dict[str, Any]:
    return {"model": spec_to_dict(spec), "fit": asdict(config)}


def crop_side(crop: int | None, profile: str) -> int | None:
    """Side of the square crop of an experiment's input: ``crop`` if given (0 = none), else
    64 for the ``smoke`` profile, 128 for ``cpu`` and none (the whole image) for ``paper``."""
    if crop is not None:
        return crop if crop > 0 else None
    return {"smoke": 64, "cpu": 128}.get(profile)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def image_name(path: Path | str) -> str:
    return Path(path).stem


#: Where a square crop of a named image is centred (row, column), else the image centre:
#: Barbara's scarf, whose stripes (0.27 cycles/pixel) the lowfreq-noise and upsampling
#: experiments need inside their 128×128 crop.
CROP_CENTRES: dict[str, tuple[int, int]] = {"barbara": (256, 384)}


def crop_square(image: torch.Tensor, side: int | None, centre: tuple[int, int] | None = None) -> torch.Tensor:
    """The ``side × side`` window of ``image`` centred at ``centre`` (default: the image centre),
    shifted to lie inside the image; the whole image when ``side`` is None or too large.
    Never resamples: fine texture keeps its frequency."""
    _, h, w = image.shape
    if side is None or (side >= h and side >= w):
        return image.clone()
    sh, sw = min(side, h), min(side, w)
    cy, cx = centre if centre is not None else (h // 2, w // 2)
    top = int(min(max(cy - sh // 2, 0), h - sh))
    left = int(min(max(cx - sw // 2, 0), w - sw))
    return image[:, top:top + sh, left:left + sw].clone()


def load_inputs(items: Sequence[str], data_dir: str | None, factor: int = 1, method: str = "study", *,
                crop: int | None = None, pattern_size: int = 256) -> dict[str, torch.Tensor]:
    """Every experiment's inputs, by name, from the command line's items.

    * ``set:NAME`` — a named data set (:func:`dipscope.datasets.load`, sha256-checked);
    * ``pattern:F1,F2,…`` — generated pattern images of side ``pattern_size``
      (:func:`dipscope.datasets.pattern_image`), named ``pattern-F``; never resampled;
    * anything else — an image file, named by its stem.

    Loaded images are shrunk ×``factor`` with ``method`` (:func:`dipscope.physics.downsample`),
    then cropped to a ``crop × crop`` square (:func:`crop_square`, centred per
    :data:`CROP_CENTRES`). Two inputs with one name are refused.
    """
    from ..datasets import load, pattern_image
    from ..images import read_image
    from ..physics import RESIZES, downsample

    if factor < 1:
        raise DipscopeError("the downsampling factor must be ≥ 1")
    if method not in RESIZES:
        raise DipscopeError(f"unknown resize {method!r}; choose one of {', '.join(RESIZES)}")
    out: dict[str, torch.Tensor] = {}

    def add(name: str, image: torch.Tensor, resample: bool = True) -> None:
        if name in out:
            raise DipscopeError(f"two inputs are both named {name!r}; rename one of them")
        if resample and (factor > 1 or method == "study-distorted"):
            image = downsample(image, factor, method)
        out[name] = crop_square(image, crop, CROP_CENTRES.get(name)) if crop else image

    for item in items:
        if item.startswith("set:"):
            for name, image in load(item[4:], data_dir).items():
                add(name, image)
        elif item.startswith("pattern:"):
            for f in item[len("pattern:"):].split(","):
                try:
                    fraction = float(f)
                except ValueError:
                    raise DipscopeError(f"bad pattern fraction {f!r} in {item!r}; use e.g. pattern:0.2,0.5") from None
                add(f"pattern-{fraction:.2f}", pattern_image(pattern_size, fraction), resample=False)
        else:
            add(image_name(item), read_image(item))
    if not out:
        raise DipscopeError("no input images given")
    return out


def recoveries_text(summary: Mapping[str, Any]) -> str:
    """A table cell for the steps where the fit loop reset the weights after a loss jump: the
    steps, ``none``, or ``?`` for a run that did not record them (made before runs recorded it)."""
    if "recoveries" not in summary:
        return "?"
    steps = summary["recoveries"]
    if steps and isinstance(steps[0], list):  # one list per run of a multi-run task
        return " / ".join(", ".join(str(t) for t in run) or "none" for run in steps)
    return ", ".join(str(t) for t in steps) or "none"


def fmt(value: Any, spec: str = ".2f") -> str:
    """A table cell: ``–`` for a missing value (None or NaN), floats formatted with ``spec``,
    anything else as it prints."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)
