"""Divergence recovery: the original implementation's reset to the last good weights."""

from __future__ import annotations

import math

import torch


class DivergenceGuard:
    """Watches the per-run losses of ``R`` runs held in one (grouped) network at observation
    steps and resets a run that diverged.

    A run whose loss is not finite or exceeds ``factor`` × its last observed loss gets its slice
    of every parameter back from the last good copy, as the original implementation does; Adam's
    moments are kept, except that non-finite entries (left by NaN gradients) are zeroed; its EMA
    of the outputs goes back to the EMA of the last healthy observation. Healthy runs refresh
    their good copies. :attr:`recoveries` lists, per run, the steps at which it was reset.
    """

    def __init__(self, net: torch.nn.Module, runs: int, factor: float) -> None:
        self.runs = runs
        self.factor = factor
        self.good = [p.detach().clone() for p in net.parameters()]
        self.good_loss = [math.inf] * runs
        self.good_ema: list[torch.Tensor] = []
        self.recoveries: list[list[int]] = [[] for _ in range(runs)]

    def check(self, values: list[float], net: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
              ema: torch.Tensor | None) -> list[bool]:
        """Reset the runs whose loss ``values`` diverged; returns which were reset (the caller
        skips their update at this step)."""
        R = self.runs
        bad = [not math.isfinite(v) or v > self.factor * g for v, g in zip(values, self.good_loss)]
        with torch.no_grad():
            for p, g in zip(net.parameters(), self.good):
                pr, gr = p.unflatten(0, (R, -1)), g.unflatten(0, (R, -1))
                moments = [t.unflatten(0, (R, -1)) for t in optimizer.state.get(p, {}).values()
                           if isinstance(t, torch.Tensor) and t.shape == p.shape]
                for r in range(R):
                    if bad[r]:
                        pr[r].copy_(gr[r])
                        for m in moments:
                            torch.nan_to_num_(m[r], nan=0.0, posinf=0.0, neginf=0.0)
                    else:
                        gr[r].copy_(pr[r])
        for r, v in enumerate(values):
            if bad[r]:
                self.recoveries[r].append(step)
            else:
                self.good_loss[r] = v
        if ema is not None:
            self._restore_ema(ema, bad)
        return bad

    def _restore_ema(self, ema: torch.Tensor, bad: list[bool]) -> None:
        """A reset run also drops the diverged outputs from its EMA."""
        if not self.good_ema:
            self.good_ema = [e.clone() for e in ema]
        for r in range(self.runs):
            if bad[r]:
                ema[r].copy_(self.good_ema[r])
            else:
                self.good_ema[r].copy_(ema[r])
