"""The :class:`EarlyStopping` callback: a probe and a rule inside :func:`dipscope.fit.fit`,
keeping the image of the rule's candidate step (:class:`Choice`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..fit import Callback, FitState
from ..physics.operators import Operator
from .rules import DEFAULT_RETURN_EMA, Delayed, Rule, make_rule
from .signals import Context, Probe


@dataclass
class Choice:
    """The image a stopping rule returns, and how it was chosen."""

    rule: str
    step: int
    image: torch.Tensor
    source: str  # "ema" or "output"
    stopped_at: int | None
    sigma: float
    sigma_given: bool
    output: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]
    ema: torch.Tensor | None = field(repr=False, default=None)
    reason: str = ""
    sigma_estimator: str | None = None  # how σ was estimated (None when it was given)

    def summary(self) -> dict[str, Any]:
        return {"rule": self.rule, "step": self.step, "source": self.source, "stopped_at": self.stopped_at,
                "stopped_early": self.stopped_at is not None, "sigma_255": 255.0 * self.sigma,
                "sigma_given": self.sigma_given, "sigma_estimator": self.sigma_estimator, "reason": self.reason}


class EarlyStopping(Callback):
    """Runs ``rule`` inside the fit; asks the loop to stop when the rule says so.

    ``sigma`` (the image's [0, 1] scale) is the noise level if known, else it is estimated from
    ``target``. With a forward ``operator`` ``A`` (deblurring, super-resolution, a deepinv
    physics), the rule's probe sees ``A(x_t)`` and ``A(x̄_t)`` — the measurement the output
    predicts — so that the discrepancy ``||y − A(x_t)||² / N`` is compared with σ²; the
    returned image is still ``x_t`` (or ``x̄_t``). A mask's zeros would be read as data: no
    rule handles inpainting yet. After the fit, :attr:`choice` holds the rule's image: the EMA at the rule's
    step when ``return_ema`` and the fit keeps an EMA, else the raw output.

    When the fit ends before the rule stops it (its step limit, or an interrupt) and the rule
    follows the latest step (its candidate is the last step it saw, as for every
    :class:`~dipscope.stopping.rules.Delayed` rule) without its signal having come, the choice
    is the raw output at the fit's last step: the fit has not reached the noise level, it is
    still improving, and the EMA — an average over the last ~``1/(1 − α)`` steps — lags behind
    it (at 300 steps of the demo the EMA was 1.3 dB below the output). If a delayed rule's
    signal did come (the fit is past the noise level) and only its wait was cut short, the
    choice is the EMA at the last step, as the rule intends. A rule that keeps an
    earlier candidate (e.g. ``wmv``'s variance minimum) returns that step's image as usual.
    """

    def __init__(self, rule: Rule | str, target: torch.Tensor, sigma: float | None = None,
                 return_ema: bool = DEFAULT_RETURN_EMA, every: int = 1, operator: Operator | None = None) -> None:
        self.rule = make_rule(rule) if isinstance(rule, str) else rule
        self.target = target
        self.operator = operator
        self.sigma = sigma
        self.return_ema = return_ema
        self.every = every
        self.choice: Choice | None = None

    def on_start(self, state: FitState) -> None:
        self.context = Context.from_target(self.target, self.sigma)
        self.probe = Probe(self.target, self.context, needs=self.rule.needs)
        self.rule.reset(self.context)
        self._kept: tuple[int, torch.Tensor, torch.Tensor | None] | None = None
        self._stopped = False
        self._first = True
        self.choice = None

    def observe(self, state: FitState) -> bool:
        if self._stopped:
            return True
        if self._first:
            self._first = False
            if state.ema is None and isinstance(self.rule, Delayed):
                self.rule.delay = 0  # the lag is for the EMA; without one there is nothing to wait for
        obs = self.probe(state.step, self._measured(state.output), self._measured(state.ema), state.loss)
        stop = self.rule.update(obs)
        if self.rule.candidate == state.step:
            ema = state.ema
            self._kept = (state.step, state.output.detach().float().cpu().clone(),
                          None if ema is None else ema.detach().float().cpu().clone())
        self._stopped = bool(stop)
        return self._stopped

    def _measured(self, image: torch.Tensor | None) -> torch.Tensor | None:
        """``A(x)``: what the rule compares with the measurement (``x`` itself for denoising)."""
        if image is None or self.operator is None:
            return image
        if getattr(self, "_device", None) != image.device:
            self.operator, self._device = self.operator.to(image.device), image.device
        return self.operator(image[None].float())[0]

    def on_end(self, state: FitState) -> None:
        if not self._stopped:
            self.rule.finish()
        follows_latest = self.rule.candidate is None or self.rule.candidate == self.rule.last_step
        fired = getattr(self.rule, "fired_at", None) is not None  # a Delayed rule waiting for its EMA
        cut_short = not self._stopped and follows_latest and not fired
        if self._kept is None or (cut_short and self._kept[0] != state.step):
            ema = state.ema
            self._kept = (state.step, state.output.detach().float().cpu().clone(),
                          None if ema is None else ema.detach().float().cpu().clone())
        step, out, ema = self._kept
        use_ema = self.return_ema and ema is not None and not cut_short
        source = "ema" if use_ema else "output"
        if self._stopped:
            reason = f"the rule stopped the fit at step {self.rule.stopped_at}; the {source} at its step"
        elif cut_short:
            reason = (f"the fit ended at step {state.step} before the rule stopped it; the raw output there "
                      "(the fit is still improving and the EMA lags behind it)")
        elif fired:
            reason = (f"the rule's signal came at step {self.rule.fired_at} and the fit ended at step {state.step}, "
                      f"before the planned stop; the {source} at the last step")
        else:
            reason = f"the fit ended before the rule stopped it; the {source} at the rule's candidate step"
        self.choice = Choice(rule=self.rule.name, step=step, image=ema if use_ema else out,
                             source=source, stopped_at=self.rule.stopped_at,
                             sigma=self.context.sigma, sigma_given=self.context.sigma_given, output=out, ema=ema,
                             reason=reason, sigma_estimator=None if self.context.sigma_given else self.context.estimator)
