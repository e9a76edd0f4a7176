"""The loop: Adam on ``||A(f_θ(z)) − y||²`` for R runs held in one (grouped) network, observed
every ``k`` steps (see :mod:`dipscope.fit` for the objective and conventions)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from .. import interrupts
from .. import metrics as M
from ..errors import DipscopeError
from ..images import crop_padding
from ..models import ModelSpec, as_spec, build, build_group, count_parameters, use_native_kernels
from ..physics.operators import Identity, Operator
from ..runtime import (
    autocast,
    check_flush_denormals,
    compute_dtype,
    derive_seed,
    describe_device,
    flushed_denormals,
    resolve_device,
    resolve_precision,
)
from .graph import StepGraph, graph_capture_possible
from .parallel import fit_in_threads, parallel_workers
from .recovery import DivergenceGuard
from .setup import (check_inputs, check_memory, enable_fast_math, make_optimizer, network_input, padded_shape,
                    resolve_layout)
from .types import Callback, FitConfig, FitResult, FitState


def fit(
    spec: ModelSpec,
    target: torch.Tensor,
    config: FitConfig | None = None,
    *,
    clean: torch.Tensor | None = None,
    operator: Operator | None = None,
    callbacks: Sequence[Callback] = (),
    ssim: bool = True,
) -> FitResult:
    """Fit ``f_θ(z)`` to ``target`` and return the trajectory's end points and metrics.

    Minimises ``||A(f_θ(z)) − y||²`` over θ by Adam, from the seed ``config.seed``. A
    ``KeyboardInterrupt`` during the loop ends it cleanly: the result holds what was
    reached and ``interrupted=True``.

    Parameters
    ----------
    spec : the architecture: a spec of :mod:`dipscope.models`, or any ``torch.nn.Module`` (or a
        callable ``make(shape)`` that makes one; :class:`dipscope.models.NetworkSpec`, which also
        gives it a chosen input).
    target : the measurement ``y``, (C, H, W) float in [0, 1].
    config : optimisation settings (defaults: :class:`FitConfig`).
    clean : the ground truth, if known: adds PSNR/SSIM of the raw and EMA outputs to the
        metrics and keeps the best output.
    operator : the forward operator ``A`` (default identity: denoising).
    callbacks : observers called every ``config.observe_every · cb.every`` steps.
    ssim : also compute SSIM at observations (costs a little CPU time).

    Returns
    -------
    FitResult
        The last output, its EMA, the best output when ``clean`` is given, and the metrics.
    """
    config = config or FitConfig()
    return fit_runs(spec, target, config, seeds=[config.seed], clean=clean, operator=operator,
                    callbacks=[list(callbacks)], ssim=ssim, group=False)[0]


def fit_runs(
    spec: ModelSpec,
    target: torch.Tensor,
    config: FitConfig | None = None,
    *,
    seeds: Sequence[int],
    clean: torch.Tensor | None = None,
    operator: Operator | None = None,
    callbacks: Sequence[Sequence[Callback]] | None = None,
    ssim: bool = True,
    group: bool | None = None,
    parallel: bool | None = None,
) -> list[FitResult]:
    """Fit R independent runs (one per seed) of one configuration to the same target.

    With ``group=True`` the R networks are fused into one network of grouped convolutions
    (:func:`dipscope.models.build_group`) and fitted together: the loss is the sum of the
    runs' losses, so each run's gradients, and Adam's element-wise updates, are its own; in
    fp32 the result equals R separate fits up to summation order. ``group=None`` groups on
    CUDA, where it removes launch overhead, and runs one after the other on a CPU, where
    grouped convolutions were measured slower (``benchmarks/RESULTS.md``). Only the ``skip``
    family groups. ``callbacks[r]`` observe run ``r``; the fit ends when every run has
    asked to stop, and a run that stopped earlier keeps the output of its stopping step.

    Runs that are not grouped run at once on a multi-core CPU when more than one thread is
    available — every run, up to two per thread, each with its share of the threads (at least
    one; :func:`dipscope.fit.parallel.parallel_workers`); ``parallel=False`` fits them one after
    the other. A callback object listed for several runs then sees their calls
    interleaved, from several threads. A stop signal, or a :class:`KeyboardInterrupt` raised by
    any run's callback, ends every run (runs fitted in turn: the current one, and no later run
    starts).
    """
    config = config or FitConfig()
    spec = as_spec(spec)  # a torch.nn.Module, or a callable that makes one, is a NetworkSpec
    seeds = list(seeds)
    if not seeds:
        raise DipscopeError("fit_runs needs at least one seed")
    callbacks = [list(c) for c in callbacks] if callbacks is not None else [[] for _ in seeds]
    if len(callbacks) != len(seeds):
        raise DipscopeError("give one list of callbacks per seed")
    device = resolve_device(config.device)
    can_group = spec.family == "skip" and not config.pixel_batch
    if group is None:
        group = can_group and device.type == "cuda" and len(seeds) > 1
    if group and not can_group:
        raise DipscopeError(f"only the skip family can fit several runs as one network, not {spec.family}")
    if group:
        return GroupFit(spec, target, config, seeds, clean, operator, callbacks, ssim).run()
    workers = parallel_workers(len(seeds), device) if parallel is not False else 1
    if workers > 1:
        fits = [GroupFit(spec, target, replace(config, seed=s), [s], clean, operator, [cbs], ssim)
                for s, cbs in zip(seeds, callbacks)]  # built here, in turn: weights from the global generator
        return fit_in_threads(fits, workers)
    results: list[FitResult] = []
    try:  # a stop signal between runs (while the next one is built) keeps the finished ones
        for s, cbs in zip(seeds, callbacks):
            interrupts.raise_pending()  # one that came while the last run was saved stops here
            results += GroupFit(spec, target, replace(config, seed=s), [s], clean, operator, [cbs], ssim).run()
            if results[-1].interrupted:  # Ctrl-C ends the whole call, not just the current run
                break
    except KeyboardInterrupt:
        if not results:
            raise
    return results


@dataclass
class RunBook:
    """Per-run bookkeeping of the loop: its observers, metric rows, best output and stop."""

    seed: int
    callbacks: list[Callback]
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, int, torch.Tensor] | None = None
    stopped_at: int | None = None
    stop_output: torch.Tensor | None = None
    stop_ema: torch.Tensor | None = None


class GroupFit:
    """One call of the loop for R = ``len(seeds)`` runs held in one (grouped) network.

    :meth:`run` steps Adam ``config.steps`` times (:meth:`step`), observing every
    ``config.observe_every`` steps (:meth:`observe_all`), and returns one :class:`FitResult`
    per run (:meth:`results`).
    """

    #: Steps of loss the first buffer holds (it doubles as needed).
    loss_chunk = 4096

    def __init__(self, spec: ModelSpec, target: torch.Tensor, config: FitConfig, seeds: list[int],
                 clean: torch.Tensor | None, operator: Operator | None, callbacks: list[list[Callback]],
                 ssim: bool) -> None:
        self.operator = operator or Identity()
        check_inputs(spec, target, config, clean, self.operator)
        self.spec, self.config, self.ssim, self.R = spec, config, ssim, len(seeds)
        self.shape = self.operator.domain_shape(target.shape)  # the network's output, cropped
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        check_flush_denormals(config.flush_denormals, self.device)  # a run.json must not claim it
        self.channels_last = resolve_layout(config.channels_last, self.precision, self.device) and spec.family == "skip"
        out_shape, self.padding = padded_shape(spec, self.shape)
        check_memory(spec, out_shape, self.R, config.pixel_batch, self.device)
        self.graphed = config.cuda_graph
        if self.graphed and not graph_capture_possible(self.device):
            raise DipscopeError(f"CUDA graphs need a CUDA device, not {self.device}")
        if config.fast:
            enable_fast_math(self.device)
        self._build(seeds, out_shape, target)
        self.clean = clean.detach().cpu().float() if clean is not None else None
        self.books = [RunBook(seed, cbs) for seed, cbs in zip(seeds, callbacks)]
        # grown as the steps are done (:meth:`keep_losses`): a huge step budget costs nothing up front
        self.losses = torch.zeros(min(config.steps, self.loss_chunk), self.R, device=self.device, dtype=self.dtype)
        self.ema: torch.Tensor | None = None
        self.guard = DivergenceGuard(self.net, self.R, config.divergence_factor) if config.recover_divergence else None
        self.stop_event: threading.Event | None = None  # set by another thread: stop as if interrupted

    def _build(self, seeds: list[int], out_shape: tuple[int, int, int], target: torch.Tensor) -> None:
        """The networks (weights from each seed's ``weights`` stream), their inputs ``z``, the
        input-noise generators and the optimiser, on the fit's device and layout."""
        config, device = self.config, self.device
        nets, zs = [], []
        for seed in seeds:
            torch.manual_seed(derive_seed(seed, "weights"))
            nets.append(build(self.spec, out_shape))
            zs.append(network_input(self.spec, out_shape, config,
                                    torch.Generator().manual_seed(derive_seed(seed, "input"))))
        self.dtype = compute_dtype(self.precision)
        net = (build_group(self.spec, out_shape, nets) if self.R > 1 else nets[0]).to(device=device, dtype=self.dtype)
        if not config.fast:  # the reference mode runs PyTorch's own kernels throughout
            use_native_kernels(net)
        self.n_parameters = count_parameters(net) // self.R
        z = torch.cat(zs, dim=1).to(device=device, dtype=self.dtype)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
            z = z.contiguous(memory_format=torch.channels_last)
        self.net, self.z = net, z
        self.y = target.to(device=device, dtype=self.dtype)[None]
        self.z_flat, self.y_flat = z.flatten(2), self.y.flatten(2)  # pixel minibatches index these
        self.op = self.operator.to(device)
        self.noise_gens = [torch.Generator(device=device).manual_seed(derive_seed(s, "input_noise")) for s in seeds]
        self.z_parts = [zp.shape for zp in zs]
        self.optimizer = make_optimizer(net.parameters(), config, device, capturable=self.graphed)
        self.run_net = torch.compile(net) if config.compile else net
        if self.graphed:  # the captured step reads its input from one fixed buffer
            self.static_inp = z.clone() if config.reg_noise_std > 0 else z
            self.graph_step: StepGraph | None = StepGraph(self._graph_body, self.device)

    # --- the network's output --------------------------------------------------------------

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """Network output as (R, C, H, W) in the loss dtype, cropped to the image."""
        with autocast(self.precision, self.device, cache=not self.graphed):
            out = self.run_net(inp)
        return crop_padding(out.to(self.dtype), self.padding).reshape(self.R, *self.shape)

    @torch.no_grad()
    def full_output(self) -> torch.Tensor:
        return self.forward(self.z)

    def input_noise(self) -> torch.Tensor:
        """This step's perturbation of ``z``, each run's part from its own generator."""
        parts = [torch.randn(shape, device=self.device, generator=g, dtype=self.dtype)
                 for shape, g in zip(self.z_parts, self.noise_gens)]
        noise = parts[0] if self.R == 1 else torch.cat(parts, dim=1)
        return noise.contiguous(memory_format=torch.channels_last) if self.channels_last else noise

    def run_losses(self, out: torch.Tensor) -> torch.Tensor:
        """Per-run data term ``||A(x) − y||² / N`` of outputs (R, C, H, W)."""
        return torch.mean((self.op(out) - self.y) ** 2, dim=(1, 2, 3))

    def keep_losses(self, step: int, run_loss: torch.Tensor) -> None:
        """Store step ``step``'s per-run losses, doubling the buffer when it is full."""
        if step >= len(self.losses):
            grown = min(2 * len(self.losses), self.config.steps)
            self.losses = torch.cat([self.losses, self.losses.new_zeros(grown - len(self.losses), self.R)])
        self.losses[step] = run_loss

    def _update_ema(self, out: torch.Tensor) -> None:
        alpha = self.config.ema
        self.ema = out.clone() if self.ema is None else self.ema.mul_(alpha).add_(out, alpha=1 - alpha)

    # --- observation -------------------------------------------------------------------------

    def state_of(self, r: int, step: int, loss: float, outputs: torch.Tensor | None) -> FitState:
        out_fn = (lambda: outputs[r]) if outputs is not None else (lambda: self.full_output()[r])
        return FitState(step, self.config.steps, loss, self.net, out_fn,
                        lambda: None if self.ema is None else self.ema[r], run=r, seed=self.books[r].seed)

    def record(self, book: RunBook, state: FitState) -> None:
        """The metric row of an observation: loss and time, and with a clean image PSNR/SSIM of
        the output and its EMA; keeps the best output."""
        row: dict[str, float] = {"step": state.step, "loss": state.loss, "seconds": time.perf_counter() - self.start}
        if self.clean is not None:
            out = state.output.detach().float().cpu()
            row["psnr"] = M.psnr(out, self.clean)
            if self.ssim:
                row["ssim"] = M.ssim(out, self.clean)
            if book.best is None or row["psnr"] > book.best[0]:
                book.best = (row["psnr"], state.step, out.clone())
            if state.ema is not None:
                ema_cpu = state.ema.detach().float().cpu()
                row["psnr_ema"] = M.psnr(ema_cpu, self.clean)
                if self.ssim:
                    row["ssim_ema"] = M.ssim(ema_cpu, self.clean)
        state.metrics.update(row)
        book.history.append(row)

    def observe(self, book: RunBook, state: FitState) -> None:
        """Record the metrics, call the run's observers, and keep the output if one asks to stop."""
        self.record(book, state)
        k = state.step // self.config.observe_every
        want = False
        for cb in book.callbacks:
            if k % max(cb.every, 1) == 0 and cb.observe(state):
                want = True
        if want and book.stopped_at is None:
            book.stopped_at = state.step
            book.stop_output = state.output.detach().float().cpu().clone()
            book.stop_ema = None if state.ema is None else state.ema.detach().float().cpu().clone()

    def observe_runs(self, step: int, values: list[float], out: torch.Tensor | None, bad: list[bool]) -> bool:
        """Observe every run still going and not just reset; True when every run has stopped."""
        for r, book in enumerate(self.books):
            if book.stopped_at is None and not bad[r]:
                self.observe(book, self.state_of(r, step, values[r], out))
        return all(b.stopped_at is not None for b in self.books)

    # --- the loop ------------------------------------------------------------------------------

    def step(self, step: int) -> bool:
        """One Adam step (with the observations of an observation step); True when every run has stopped."""
        if self.graphed:
            return self._replayed_step(step)
        config = self.config
        self.optimizer.zero_grad(set_to_none=True)
        if config.pixel_batch:  # coordinate models only, R = 1
            run_loss, out, inp = self._pixel_batch_loss(), None, None
        else:
            inp = self.z + config.reg_noise_std * self.input_noise() if config.reg_noise_std > 0 else self.z
            out = self.forward(inp)
            run_loss = self.run_losses(out)
            out = out.detach()
            if config.ema is not None:
                self._update_ema(out)
        self.keep_losses(step, run_loss.detach())
        if step % config.observe_every == 0:
            values = run_loss.detach().cpu().tolist()
            bad = [False] * self.R
            if self.guard is not None:
                bad = self.guard.check(values, self.net, self.optimizer, step, self.ema)
                if all(bad):
                    return False
                if any(bad):  # weights changed under the graph: recompute, and mask the reset runs
                    out = self.forward(inp)
                    run_loss = torch.where(torch.tensor(bad, device=self.device), 0.0, self.run_losses(out))
                    out = out.detach()
            if config.pixel_batch and config.ema is not None:
                self._update_ema(self.full_output())
            if self.observe_runs(step, values, out, bad):
                return True
        run_loss.sum().backward()
        self.optimizer.step()
        return False

    def _graph_body(self) -> None:
        """The captured part of a step: forward on the input buffer, loss, backward, Adam; keeps
        the output and per-run losses (before the update) as ``static_out``/``static_loss``."""
        self.optimizer.zero_grad(set_to_none=True)
        out = self.forward(self.static_inp)
        run_loss = self.run_losses(out)
        run_loss.sum().backward()
        self.optimizer.step()
        self.static_out, self.static_loss = out.detach(), run_loss.detach()

    def _replayed_step(self, step: int) -> bool:
        """:meth:`step` with the update replayed from a CUDA graph (``config.cuda_graph``).

        The same computation in the same order, except that the update is part of the replay:
        the observations of step ``t`` (and the divergence check) come after its update,
        computed from the output before it. The divergence check therefore works on a snapshot
        of the weights and moments taken before an observed step (:meth:`DivergenceGuard.snapshot`),
        which makes a reset the same as the loop's; the update of the step at which every run
        stopped is done but never used, and ``state.net`` holds the weights after the update.
        """
        config = self.config
        observed = step % config.observe_every == 0
        if config.reg_noise_std > 0:
            self.static_inp.copy_(self.z + config.reg_noise_std * self.input_noise())
        before = self.guard.snapshot(self.net, self.optimizer) if observed and self.guard is not None else None
        assert self.graph_step is not None
        self.graph_step()
        out, run_loss = self.static_out, self.static_loss
        self.keep_losses(step, run_loss)
        if config.ema is not None:
            self._update_ema(out)
        if not observed:
            return False
        values = run_loss.cpu().tolist()
        bad = [False] * self.R
        if self.guard is not None:
            bad = self.guard.check(values, self.net, self.optimizer, step, self.ema, before=before)
        out = out.clone()  # the buffer is overwritten by the next replay; observers may keep this one
        return self.observe_runs(step, values, out, bad)

    def _pixel_batch_loss(self) -> torch.Tensor:
        """The loss on a random minibatch of pixels (drawn with replacement, as in the study)."""
        c, h, w = self.shape
        idx = torch.randint(0, h * w, (self.config.pixel_batch,), device=self.device, generator=self.noise_gens[0])
        with autocast(self.precision, self.device):
            pred = self.run_net(self.z_flat[:, :, idx]).to(self.dtype)
        return torch.mean((self.op.restrict(idx)(pred) - self.y_flat[:, :, idx]) ** 2).reshape(1)

    def run(self) -> list[FitResult]:
        interrupted, step = False, 0
        self.start = time.perf_counter()
        for r, book in enumerate(self.books):
            for cb in book.callbacks:
                cb.on_start(self.state_of(r, 0, float("nan"), None))
        try:
            with flushed_denormals(self.config.flush_denormals, self.device):
                for step in range(self.config.steps):
                    if self.stop_event is not None and self.stop_event.is_set():
                        raise KeyboardInterrupt
                    interrupts.raise_pending()  # a signal held back by a deferral elsewhere
                    if self.step(step):
                        break
                else:
                    step = self.config.steps
        except KeyboardInterrupt:
            interrupted = True
            if self.stop_event is not None:
                self.stop_event.set()  # the runs fitted beside this one stop too
        with interrupts.deferred():  # a signal while the results are gathered must not lose the fit
            try:
                return self.results(step, interrupted, time.perf_counter() - self.start)
            finally:
                if self.graphed:  # the graph's memory pool goes now, not at the next garbage collection
                    self.graph_step = None

    def results(self, step: int, interrupted: bool, seconds: float) -> list[FitResult]:
        """Finish every run: a last observation (or metric row) at the end, ``on_end``, results."""
        final = self.full_output()
        final_losses = self.run_losses(final).cpu().tolist()
        return [self._result(r, book, step, final, final_losses[r], interrupted, seconds)
                for r, book in enumerate(self.books)]

    def _result(self, r: int, book: RunBook, step: int, final: torch.Tensor, final_loss: float,
                interrupted: bool, seconds: float) -> FitResult:
        config = self.config
        stopped = book.stopped_at is not None
        done = book.stopped_at if stopped else step
        if not stopped:
            fs = self.state_of(r, done, final_loss, final)
            if not interrupted and done % config.observe_every == 0 and config.steps > 0:
                self.observe(book, fs)
            elif not any(row["step"] == done for row in book.history):
                self.record(book, fs)
            final_r = final[r].detach().float().cpu()
            ema_r = None if self.ema is None else self.ema[r].detach().float().cpu()
        else:
            final_r, ema_r = book.stop_output, book.stop_ema
            fs = FitState(done, config.steps, book.history[-1]["loss"], self.net, lambda: final_r, lambda: ema_r,
                          run=r, seed=book.seed)
        for cb in book.callbacks:
            cb.on_end(fs)
        if book.history and self.clean is not None:
            book.history[-1]["psnr_final"] = book.history[-1].get("psnr", math.nan)
            if "psnr_ema" in book.history[-1]:
                book.history[-1]["psnr_ema_final"] = book.history[-1]["psnr_ema"]
        best = book.best
        return FitResult(
            final=final_r, ema=ema_r, best=None if best is None else best[2],
            best_step=None if best is None else best[1], best_psnr=None if best is None else best[0],
            history=book.history, losses=self.losses[:done, r].cpu().numpy(), steps_done=done,
            interrupted=interrupted, stopped_early=stopped,
            recoveries=self.guard.recoveries[r] if self.guard is not None else [],
            seconds=seconds, device=describe_device(self.device), precision=self.precision,
            n_parameters=self.n_parameters, seed=book.seed, channels_last=self.channels_last, grouped=self.R,
        )
