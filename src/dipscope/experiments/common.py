"""What every experiment shares: model choices by name, profiles, inputs and report helpers.

An experiment expands into independent *tasks* (:class:`dipscope.runs.Task`: one fit, or one
group of fits, each with its own run directory under the experiment's output directory) and
runs them with :func:`dipscope.runs.run_tasks`, which skips the finished ones and resumes a
killed sweep.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import DipscopeError
from ..fit import FitConfig
from ..models import ModelSpec, spec_to_dict
from ..presets import preset

PROFILES = ("smoke", "cpu", "paper")


def model_choice(name: str, profile: str) -> tuple[ModelSpec, FitConfig]:
    """The study's settings (``chakrabarty2019``) for model ``name``, scaled to ``profile``.

    Names: ``dip``, ``linear-N`` (DIP-Linear of width N), ``relunet``.

    * ``paper`` — the study's scripts as they are (no divergence recovery: they have none).
    * ``cpu`` — what 2 CPU cores finish in minutes per image: DIP with 64 instead of 256
      channels per level; ReLUNet 2 000 instead of 30 000 steps; and the loop's divergence
      recovery on (the committed ``cpu`` results were made with it). Experiments may reduce
      further (their own steps or crops): each says so in its docstring.
    * ``smoke`` — seconds: tiny widths and a few dozen steps (for tests), recovery on.
    """
    if profile not in PROFILES:
        raise DipscopeError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    spec, config = _study_model(name, profile)
    return spec, replace(config, recover_divergence=profile != "paper")


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


def load_inputs(images: Sequence[str], data_dir: str | None, factor: int, method: str = "study") -> dict[str, Any]:
    """Resolve experiment inputs: file paths, or ``set:NAME`` for a named data set (downsampled ×factor)."""
    from ..datasets import load
    from ..images import read_image
    from ..physics import RESIZES, downsample

    if factor < 1:
        raise DipscopeError("the downsampling factor must be ≥ 1")
    if method not in RESIZES:
        raise DipscopeError(f"unknown resize {method!r}; choose one of {', '.join(RESIZES)}")
    out: dict[str, Any] = {}

    def add(name: str, image: Any) -> None:
        if name in out:
            raise DipscopeError(f"two inputs are both named {name!r}; rename one of them")
        out[name] = downsample(image, factor, method) if factor > 1 or method == "study-distorted" else image

    for item in images:
        if item.startswith("set:"):
            for name, image in load(item[4:], data_dir).items():
                add(name, image)
        else:
            add(image_name(item), read_image(item))
    if not out:
        raise DipscopeError("no input images given")
    return out
