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

    When the update of the observed step has already been applied (a step replayed as a CUDA
    graph), the caller takes a :meth:`snapshot` of the weights and Adam's moments before the
    step and passes it to :meth:`check`: a healthy run's good copy is then the weights whose
    loss was checked (not those after the update), and a reset run also gets its moments back
    from before the update, so the diverged gradient leaves no trace.
    """

    def __init__(self, net: torch.nn.Module, runs: int, factor: float) -> None:
        self.runs = runs
        self.factor = factor
        self.good = [p.detach().clone() for p in net.parameters()]
        self.good_loss = [math.inf] * runs
        self.good_ema: list[torch.Tensor] = []
        self.recoveries: list[list[int]] = [[] for _ in range(runs)]
        self._before: list[tuple[torch.Tensor, list[torch.Tensor]]] | None = None

    @staticmethod
    def _state(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> list[torch.Tensor]:
        """Adam's state tensors of ``p`` in a fixed order: its moments (shaped like ``p``) and,
        for a capturable Adam, its step count (a 0-d tensor shared by the R runs)."""
        return [t for t in optimizer.state.get(p, {}).values() if isinstance(t, torch.Tensor)]

    def snapshot(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer
                 ) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Copies of every parameter and its Adam state as they are now (buffers reused across calls)."""
        with torch.no_grad():
            current = [(p, self._state(optimizer, p)) for p in net.parameters()]
            if self._before is None or any(len(m) != len(bm) for (_, m), (_, bm) in zip(current, self._before)):
                self._before = [(p.detach().clone(), [m.clone() for m in ms]) for p, ms in current]
            else:
                for (p, ms), (bp, bms) in zip(current, self._before):
                    bp.copy_(p)
                    for m, bm in zip(ms, bms):
                        bm.copy_(m)
        return self._before

    def check(self, values: list[float], net: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
              ema: torch.Tensor | None, before: list[tuple[torch.Tensor, list[torch.Tensor]]] | None = None
              ) -> list[bool]:
        """Reset the runs whose loss ``values`` diverged; returns which were reset (the caller
        skips their update at this step). ``values`` are the losses of the weights now, or of
        ``before`` (a :meth:`snapshot`) when the step's update was applied since: then a reset
        run's moments go back to ``before``, and if every run is reset, so does the step count
        (the loop skips that update altogether)."""
        R = self.runs
        bad = [not math.isfinite(v) or v > self.factor * g for v, g in zip(values, self.good_loss)]
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(net.parameters(), self.good)):
                pr, gr = p.unflatten(0, (R, -1)), g.unflatten(0, (R, -1))
                checked = pr if before is None else before[i][0].unflatten(0, (R, -1))
                state = self._state(optimizer, p)
                if before is not None and all(bad):
                    for t, e in zip(state, before[i][1]):
                        if t.ndim == 0:
                            t.copy_(e)
                moments = [t.unflatten(0, (R, -1)) for t in state if t.shape == p.shape]
                earlier = [None] * len(moments) if before is None else [
                    e.unflatten(0, (R, -1)) for t, e in zip(state, before[i][1]) if t.shape == p.shape]
                for r in range(R):
                    if bad[r]:
                        pr[r].copy_(gr[r])
                        for m, e in zip(moments, earlier):
                            if e is not None:
                                m[r].copy_(e[r])
                            torch.nan_to_num_(m[r], nan=0.0, posinf=0.0, neginf=0.0)
                    else:
                        gr[r].copy_(checked[r])
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
