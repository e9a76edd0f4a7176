"""The image a fit returns: each run's choice (its stopping rule's, or the last step's), and for
an ensemble the mean of the choices of the runs that finished (the DIP paper's averaging over
restarts). ``dipscope.denoise``/``restore`` and the deepinv reconstructor both return it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..fit import FitResult
from ..metrics import psnr
from .callback import EarlyStopping


@dataclass
class Outcome:
    """The returned ``image``, its ``stopping`` record (``run.json``'s section) and every run's
    chosen image (``chosen``, in seed order; the mean is over those of the finished runs)."""

    image: torch.Tensor
    stopping: dict[str, Any]
    chosen: list[torch.Tensor]
    interrupted: bool


def run_choice(stopper: EarlyStopping | None, result: FitResult, *, return_ema: bool, requested: str = "auto",
               why_none: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """One run's image and its record: the rule's choice, or without a rule (or before the rule
    saw anything) the EMA at the last step where ``return_ema`` and the fit kept one, else the output."""
    if stopper is not None and stopper.choice is not None:
        return stopper.choice.image, {"requested": requested, **stopper.choice.summary()}
    use_ema = return_ema and result.ema is not None
    source = "EMA" if use_ema else "output"
    why = f" ({why_none})" if why_none else ""
    return (result.ema if use_ema else result.final), {
        "requested": requested, "rule": None, "step": result.steps_done, "source": source.lower(),
        "stopped_early": False, "reason": f"no early stopping{why}: the {source} at the last step"}


def outcome(stoppers: Sequence[EarlyStopping | None], results: Sequence[FitResult], seeds: Sequence[int], *,
            return_ema: bool, max_steps: int, clean: torch.Tensor | None = None, requested: str = "auto",
            why_none: str | None = None) -> Outcome:
    """The result of ``len(seeds)`` runs (``results`` may be fewer: a run interrupted ends the
    call): each run's :func:`run_choice`, and the mean of those of the runs not interrupted (the
    first run's alone when none finished). ``clean`` adds each image's PSNR to the record."""
    chosen = [run_choice(s, r, return_ema=return_ema, requested=requested, why_none=why_none)
              for s, r in zip(stoppers, results)]
    for image, record in chosen:
        record["max_steps"] = max_steps
        record["result_psnr"] = None if clean is None else psnr(image, clean)
    interrupted = any(r.interrupted for r in results) or len(results) < len(seeds)
    complete = [c for c, r in zip(chosen, results) if not r.interrupted] or chosen[:1]
    image, stopping = complete[0] if len(complete) == 1 else _mean(complete, list(seeds), clean)
    stopping = dict(stopping, interrupted=interrupted)
    if len(seeds) > 1:
        stopping["runs_requested"] = len(seeds)
        stopping["runs_averaged"] = len(complete)
    return Outcome(image, stopping, [image_k for image_k, _ in chosen], interrupted)


def _mean(chosen: list[tuple[torch.Tensor, dict[str, Any]]], seeds: list[int],
          clean: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    mean = torch.stack([image for image, _ in chosen]).mean(dim=0)
    first = chosen[0][1]
    return mean, {"requested": first["requested"], "rule": first["rule"], "source": f"mean of {len(chosen)} runs",
                  "step": max(s["step"] for _, s in chosen), "max_steps": first["max_steps"],
                  "stopped_early": all(s["stopped_early"] for _, s in chosen),
                  "sigma_255": first.get("sigma_255"), "sigma_given": first.get("sigma_given"),
                  "seeds": seeds[:len(chosen)], "result_psnr": None if clean is None else psnr(mean, clean),
                  "reason": f"the mean of the {len(chosen)} runs' chosen images", "runs": [s for _, s in chosen]}
