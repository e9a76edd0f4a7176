"""The fitting engine: one optimisation loop, observed through callbacks.

Given a measurement ``y`` (C, H, W), a forward operator ``A`` and an architecture spec, the
loop minimises the Deep Image Prior objective

.. math::

    \\min_θ \\; \\lVert A(f_θ(z)) − y \\rVert^2 / N

by Adam, with ``z`` a fixed random input (or the pixel coordinates for a coordinate MLP).
Step ``t`` of the trajectory is ``x_t = f_{θ_t}(z)``, the output *before* the ``t``-th update,
so step 0 is the network at initialisation.

Options of the original implementation are all here: input-noise regularisation
(``z + σ_r ε`` at every step), an exponential moving average of the outputs
(``x̄_t = α x̄_{t−1} + (1 − α) x_t``), and divergence recovery (when the loss becomes NaN or
jumps by more than a factor, the last good weights are reloaded). The network's sides are
padded up to its multiple and its output cropped back, so any H×W works; the loss is taken
on the crop only (each side must still be at least twice that multiple: BatchNorm needs a
2×2 map at the deepest level).

Observers (:class:`Callback`) see a :class:`FitState` every ``k`` steps and may ask the loop to
stop. The loop itself reads values back from the device only at those observation steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch

from . import metrics as M
from .errors import DipscopeError
from .images import check_min_size, crop_padding
from .models import (
    ModelSpec,
    build,
    build_group,
    coordinate_grid,
    count_parameters,
    estimate_memory,
    input_shape,
)
from .physics.operators import Identity, Operator
from .runtime import (
    autocast,
    compute_dtype,
    derive_seed,
    describe_device,
    resolve_device,
    resolve_precision,
)


@dataclass
class FitConfig:
    """Everything about the optimisation that is not the architecture.

    Parameters
    ----------
    steps : number of Adam updates (the maximum, when a callback may stop earlier).
    lr : Adam learning rate.
    input_noise : distribution of ``z``: ``uniform`` (U[0,1)·scale, the original) or ``normal``.
    input_scale : the factor applied to ``z`` (original: 0.1; the study: N(0,1) with 1).
    reg_noise_std : std of the Gaussian perturbation added to ``z`` at every step (0: none).
    ema : EMA factor α of the outputs, or None.
    pixel_batch : for coordinate models, fit random minibatches of this many pixels
        (drawn with replacement, as in the study); None fits all pixels every step.
    observe_every : steps between observations (metrics, callbacks, divergence checks).
    recover_divergence : reload the last good weights on NaN or a loss jump.
    divergence_factor : a loss more than this factor above the last observed one is a
        divergence (the original's 5 dB PSNR drop, i.e. 10^0.5).
    device : ``auto`` (cuda → mps → cpu), ``cpu``, ``cuda[:i]`` or ``mps``.
    precision : ``fp32``, ``bf16`` (autocast, fp32 weights and loss), ``auto`` (bf16 on CUDA
        and on CPUs with native bf16, fp32 elsewhere) or ``fp64`` (slow; for exactness checks).
    channels_last : memory layout of convolutional networks; None picks the faster one
        (:func:`resolve_layout`).
    fast : the fast execution path's exact tweaks (fused Adam; TF32 and cuDNN autotuning on
        CUDA). ``fast=False, precision="fp32", channels_last=False`` is the *reference mode*:
        the original implementation's execution (fp32, NCHW, eager, stock Adam).
    compile : run the network through ``torch.compile`` (off by default: on a 2-core CPU it
        took ~2 min to compile and the step was slower, see ``benchmarks/RESULTS.md``).
    seed : seeds the weights, the input and all noise of the fit.
    """

    steps: int = 3000
    lr: float = 0.01
    input_noise: Literal["uniform", "normal"] = "uniform"
    input_scale: float = 0.1
    reg_noise_std: float = 1.0 / 30.0
    ema: float | None = 0.99
    pixel_batch: int | None = None
    observe_every: int = 10
    recover_divergence: bool = True
    divergence_factor: float = 10 ** 0.5
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    fast: bool = True
    compile: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 0:
            raise DipscopeError("steps must be ≥ 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise DipscopeError(f"the learning rate must be a finite number > 0, not {self.lr}")
        for name in ("input_scale", "reg_noise_std"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise DipscopeError(f"{name} must be a finite number ≥ 0, not {value}")
        if not (self.divergence_factor > 1 and math.isfinite(self.divergence_factor)):
            raise DipscopeError(f"divergence_factor must be a finite number > 1, not {self.divergence_factor}")
        if self.seed < 0:
            raise DipscopeError(f"the seed must be ≥ 0, not {self.seed}")
        if self.input_noise not in ("uniform", "normal"):
            raise DipscopeError(f"unknown input noise {self.input_noise!r}; choose uniform or normal")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise DipscopeError("ema must be in [0, 1)")
        if self.observe_every < 1:
            raise DipscopeError("observe_every must be ≥ 1")
        if self.pixel_batch is not None and self.pixel_batch < 1:
            raise DipscopeError("pixel_batch must be ≥ 1")


@dataclass
class FitState:
    """What an observer sees at an observation step.

    ``output`` and ``ema`` are (C, H, W) float32 tensors on the fit's device, cropped to the
    image; they are computed only when an observer reads them.
    """

    step: int
    steps: int
    loss: float
    net: torch.nn.Module
    _output_fn: Any = field(repr=False)
    _ema_fn: Any = field(repr=False)
    run: int = 0
    seed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    _cache: dict[str, torch.Tensor | None] = field(default_factory=dict, repr=False)

    @property
    def output(self) -> torch.Tensor:
        if "output" not in self._cache:
            self._cache["output"] = self._output_fn()
        return self._cache["output"]  # type: ignore[return-value]

    @property
    def ema(self) -> torch.Tensor | None:
        if "ema" not in self._cache:
            self._cache["ema"] = self._ema_fn()
        return self._cache["ema"]


class Callback:
    """Observer of the fit. Override what you need; ``observe`` may return True to stop."""

    every: int = 1  # observe every ``every``-th observation step of the loop

    def on_start(self, state: FitState) -> None:
        pass

    def observe(self, state: FitState) -> bool | None:
        return None

    def on_end(self, state: FitState) -> None:
        pass


@dataclass
class FitResult:
    """Outcome of :func:`fit`. Images are (C, H, W) float32 CPU tensors."""

    final: torch.Tensor
    ema: torch.Tensor | None
    best: torch.Tensor | None
    best_step: int | None
    best_psnr: float | None
    history: list[dict[str, float]]
    losses: np.ndarray
    steps_done: int
    interrupted: bool
    stopped_early: bool
    recoveries: list[int]
    seconds: float
    device: dict[str, Any]
    precision: str
    n_parameters: int
    seed: int = 0
    channels_last: bool = False
    grouped: int = 1

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars of the result (for ``run.json``)."""
        last = self.history[-1] if self.history else {}
        return {
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "stopped_early": self.stopped_early,
            "best_step": self.best_step,
            "best_psnr": self.best_psnr,
            "final_psnr": last.get("psnr_final"),
            "ema_psnr": last.get("psnr_ema_final"),
            "final_loss": float(self.losses[-1]) if len(self.losses) else None,
            "recoveries": self.recoveries,
            "seconds": self.seconds,
            "seconds_per_step": self.seconds / max(self.steps_done, 1),
            "n_parameters": self.n_parameters,
            "seed": self.seed,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "runs_fitted_together": self.grouped,
        }


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a fit on ``device`` (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _network_input(spec: ModelSpec, shape: tuple[int, int, int], config: FitConfig, gen: torch.Generator) -> torch.Tensor:
    if spec.input_kind == "coordinates":
        return coordinate_grid(shape[1], shape[2])
    z = torch.empty(1, *input_shape(spec, shape))
    if config.input_noise == "uniform":
        z.uniform_(generator=gen)
    else:
        z.normal_(generator=gen)
    return z * config.input_scale


def padded_shape(spec: ModelSpec, shape: Sequence[int]) -> tuple[tuple[int, int, int], tuple[int, int, int, int]]:
    """The network's output shape for an image of ``shape`` and the padding (l, r, t, b) to crop."""
    c, h, w = shape
    m = spec.pad_multiple
    hp, wp = -(-h // m) * m, -(-w // m) * m
    top, left = (hp - h) // 2, (wp - w) // 2
    return (c, hp, wp), (left, wp - w - left, top, hp - h - top)


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

    Parameters
    ----------
    spec : the architecture.
    target : the measurement ``y``, (C, H, W) float in [0, 1].
    config : optimisation settings (defaults: :class:`FitConfig`).
    clean : the ground truth, if known: adds PSNR/SSIM of the raw and EMA outputs to the
        metrics and keeps the best output.
    operator : the forward operator ``A`` (default identity: denoising).
    callbacks : observers called every ``config.observe_every · cb.every`` steps.
    ssim : also compute SSIM at observations (costs a little CPU time).

    A ``KeyboardInterrupt`` during the loop ends it cleanly: the result holds what was
    reached and ``interrupted=True``.
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
    """
    config = config or FitConfig()
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
        return _fit_group(spec, target, config, seeds, clean, operator, callbacks, ssim)
    results: list[FitResult] = []
    for s, cbs in zip(seeds, callbacks):
        results += _fit_group(spec, target, replace(config, seed=s), [s], clean, operator, [cbs], ssim)
        if results[-1].interrupted:  # Ctrl-C ends the whole call, not just the current run
            break
    return results


@dataclass
class _Book:
    """Per-run bookkeeping of the loop."""

    seed: int
    callbacks: list[Callback]
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, int, torch.Tensor] | None = None
    recoveries: list[int] = field(default_factory=list)
    good_loss: float = math.inf
    stopped_at: int | None = None
    stop_output: torch.Tensor | None = None
    stop_ema: torch.Tensor | None = None


def check_inputs(spec: ModelSpec, target: torch.Tensor, config: FitConfig, clean: torch.Tensor | None = None) -> None:
    """Refuse a fit that cannot run (bad settings, a target the network cannot take), before any step."""
    config.validate()
    if target.ndim != 3:
        raise DipscopeError(f"the target must be a (C, H, W) image, got shape {tuple(target.shape)}")
    _, h, w = target.shape
    if spec.family == "skip" and min(h, w) < spec.min_side:
        fit_levels = 0
        while fit_levels < spec.levels and spec.with_levels(fit_levels + 1).min_side <= min(h, w):
            fit_levels += 1
        fits = f"at most {fit_levels} level{'s' if fit_levels != 1 else ''} fit it" if fit_levels else "no level fits it"
        need = f"{spec.min_side} px" if spec.levels <= 20 else f"2^{spec.levels + 1} px"
        raise DipscopeError(f"image is {h}×{w} px but the {spec.levels}-level network needs at least {need} per side; "
                            f"{fits} (--levels)")
    check_min_size(h, w, spec.min_side, f"the {spec.family} model")
    if clean is not None and clean.shape != target.shape:
        raise DipscopeError(f"the clean image is {tuple(clean.shape)} but the target is {tuple(target.shape)}")
    if config.pixel_batch and spec.input_kind != "coordinates":
        raise DipscopeError("pixel minibatches need a coordinate model (relunet)")


def _fit_group(spec: ModelSpec, target: torch.Tensor, config: FitConfig, seeds: list[int],
               clean: torch.Tensor | None, operator: Operator | None, callbacks: list[list[Callback]],
               ssim: bool) -> list[FitResult]:
    """The loop itself, for R = len(seeds) runs held in one (grouped) network."""
    operator = operator or Identity()
    check_inputs(spec, target, config, clean)
    R = len(seeds)
    c, h, w = target.shape
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    channels_last = resolve_layout(config.channels_last, precision, device) and spec.family == "skip"
    out_shape, padding = padded_shape(spec, target.shape)
    need = R * estimate_memory(spec, out_shape, config.pixel_batch)
    free = available_memory(device)
    if free is not None and need > free:
        raise DipscopeError(
            f"this configuration needs about {need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB "
            f"is free on {device.type}; use a smaller image, model or width"
        )
    if config.fast:
        enable_fast_math(device)

    nets, zs = [], []
    for seed in seeds:
        torch.manual_seed(derive_seed(seed, "weights"))
        nets.append(build(spec, out_shape))
        zs.append(_network_input(spec, out_shape, config, torch.Generator().manual_seed(derive_seed(seed, "input"))))
    dtype = compute_dtype(precision)
    net = (build_group(spec, out_shape, nets) if R > 1 else nets[0]).to(device=device, dtype=dtype)
    del nets
    n_parameters = count_parameters(net) // R
    z = torch.cat(zs, dim=1).to(device=device, dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
    y = target.to(device=device, dtype=dtype)[None]
    op = operator.to(device)
    noise_gens = [torch.Generator(device=device).manual_seed(derive_seed(s, "input_noise")) for s in seeds]
    z_parts = [zp.shape for zp in zs]
    optimizer = make_optimizer(net.parameters(), config, device)
    run_net = torch.compile(net) if config.compile else net
    clean_ref = clean.detach().cpu().float() if clean is not None else None
    books = [_Book(seed, cbs) for seed, cbs in zip(seeds, callbacks)]

    def forward(inp: torch.Tensor) -> torch.Tensor:
        """Network output as (R, C, H, W) in the loss dtype, cropped to the image."""
        with autocast(precision, device):
            out = run_net(inp)
        return crop_padding(out.to(dtype), padding).reshape(R, c, h, w)

    @torch.no_grad()
    def full_output() -> torch.Tensor:
        return forward(z)

    def input_noise() -> torch.Tensor:
        parts = [torch.randn(shape, device=device, generator=g, dtype=dtype) for shape, g in zip(z_parts, noise_gens)]
        noise = parts[0] if R == 1 else torch.cat(parts, dim=1)
        return noise.contiguous(memory_format=torch.channels_last) if channels_last else noise

    pixel_batch = config.pixel_batch
    y_flat, z_flat = y.flatten(2), z.flatten(2)
    losses = torch.zeros(config.steps, R, device=device, dtype=dtype)
    ema_out: torch.Tensor | None = None
    good_params = [p.detach().clone() for p in net.parameters()] if config.recover_divergence else []
    good_ema: list[torch.Tensor] = []  # per run: the EMA at the last healthy observation
    interrupted = False
    step = 0
    start = time.perf_counter()

    def state_of(r: int, step: int, loss: float, outputs: torch.Tensor | None) -> FitState:
        out_fn = (lambda: outputs[r]) if outputs is not None else (lambda: full_output()[r])
        return FitState(step, config.steps, loss, net, out_fn, lambda: None if ema_out is None else ema_out[r],
                        run=r, seed=books[r].seed)

    def record(book: _Book, state: FitState) -> None:
        row: dict[str, float] = {"step": state.step, "loss": state.loss, "seconds": time.perf_counter() - start}
        if clean_ref is not None:
            out = state.output.detach().float().cpu()
            row["psnr"] = M.psnr(out, clean_ref)
            if ssim:
                row["ssim"] = M.ssim(out, clean_ref)
            if book.best is None or row["psnr"] > book.best[0]:
                book.best = (row["psnr"], state.step, out.clone())
            if state.ema is not None:
                ema_cpu = state.ema.detach().float().cpu()
                row["psnr_ema"] = M.psnr(ema_cpu, clean_ref)
                if ssim:
                    row["ssim_ema"] = M.ssim(ema_cpu, clean_ref)
        state.metrics.update(row)
        book.history.append(row)

    def observe(book: _Book, state: FitState) -> None:
        record(book, state)
        k = state.step // config.observe_every
        want = False
        for cb in book.callbacks:
            if k % max(cb.every, 1) == 0 and cb.observe(state):
                want = True
        if want and book.stopped_at is None:
            book.stopped_at = state.step
            book.stop_output = state.output.detach().float().cpu().clone()
            book.stop_ema = None if state.ema is None else state.ema.detach().float().cpu().clone()

    for r, book in enumerate(books):
        for cb in book.callbacks:
            cb.on_start(state_of(r, 0, float("nan"), None))
    try:
        for step in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            if pixel_batch:  # coordinate models only, R = 1
                idx = torch.randint(0, h * w, (pixel_batch,), device=device, generator=noise_gens[0])
                with autocast(precision, device):
                    pred = run_net(z_flat[:, :, idx]).to(dtype)
                run_loss = torch.mean((op.restrict(idx)(pred) - y_flat[:, :, idx]) ** 2).reshape(1)
                out = None
            else:
                inp = z + config.reg_noise_std * input_noise() if config.reg_noise_std > 0 else z
                out = forward(inp)
                run_loss = torch.mean((op(out) - y) ** 2, dim=(1, 2, 3))
                out = out.detach()
                if config.ema is not None:
                    ema_out = out.clone() if ema_out is None else ema_out.mul_(config.ema).add_(out, alpha=1 - config.ema)
            losses[step] = run_loss.detach()

            bad = [False] * R
            if step % config.observe_every == 0:
                values = run_loss.detach().cpu().tolist()
                if config.recover_divergence:
                    bad = _recover(values, books, net, good_params, optimizer, step, config.divergence_factor)
                    if ema_out is not None:
                        if not good_ema:
                            good_ema = [e.clone() for e in ema_out]
                        for r in range(R):  # a reset run also drops the diverged outputs from its EMA
                            if bad[r]:
                                ema_out[r].copy_(good_ema[r])
                            else:
                                good_ema[r].copy_(ema_out[r])
                    if all(bad):
                        continue
                    if any(bad):  # weights changed under the graph: recompute, and mask the reset runs
                        skip = torch.tensor(bad, device=device)
                        out = forward(inp)
                        run_loss = torch.where(skip, 0.0, torch.mean((op(out) - y) ** 2, dim=(1, 2, 3)))
                        out = out.detach()
                if pixel_batch and config.ema is not None:
                    full = full_output()
                    ema_out = full.clone() if ema_out is None else ema_out.mul_(config.ema).add_(full, alpha=1 - config.ema)
                for r, book in enumerate(books):
                    if book.stopped_at is None and not bad[r]:
                        observe(book, state_of(r, step, values[r], out))
                if all(b.stopped_at is not None for b in books):
                    break
            loss = run_loss.sum()
            loss.backward()
            optimizer.step()
        else:
            step = config.steps
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.perf_counter() - start

    final = full_output()
    final_losses = torch.mean((op(final) - y) ** 2, dim=(1, 2, 3)).cpu().tolist()
    results = []
    for r, book in enumerate(books):
        stopped = book.stopped_at is not None
        done = book.stopped_at if stopped else step
        if not stopped:
            fs = state_of(r, done, final_losses[r], final)
            if not interrupted and done % config.observe_every == 0 and config.steps > 0:
                observe(book, fs)
            elif not any(row["step"] == done for row in book.history):
                record(book, fs)
            final_r = final[r].detach().float().cpu()
            ema_r = None if ema_out is None else ema_out[r].detach().float().cpu()
        else:
            final_r, ema_r = book.stop_output, book.stop_ema
            fs = FitState(done, config.steps, book.history[-1]["loss"], net, lambda: final_r, lambda: ema_r,
                          run=r, seed=book.seed)
        for cb in book.callbacks:
            cb.on_end(fs)
        if book.history and clean_ref is not None:
            book.history[-1]["psnr_final"] = book.history[-1].get("psnr", float("nan"))
            if "psnr_ema" in book.history[-1]:
                book.history[-1]["psnr_ema_final"] = book.history[-1]["psnr_ema"]
        results.append(FitResult(
            final=final_r,
            ema=ema_r,
            best=None if book.best is None else book.best[2],
            best_step=None if book.best is None else book.best[1],
            best_psnr=None if book.best is None else book.best[0],
            history=book.history,
            losses=losses[:done, r].cpu().numpy(),
            steps_done=done,
            interrupted=interrupted,
            stopped_early=stopped,
            recoveries=book.recoveries,
            seconds=seconds,
            device=describe_device(device),
            precision=precision,
            n_parameters=n_parameters,
            seed=book.seed,
            channels_last=channels_last,
            grouped=R,
        ))
    return results


def _recover(values: list[float], books: list[_Book], net: torch.nn.Module, good: list[torch.Tensor],
             optimizer: torch.optim.Optimizer, step: int, factor: float) -> list[bool]:
    """Divergence recovery at an observation step; returns which runs were reset.

    A run whose loss is not finite or exceeds ``factor`` × its last observed loss gets its
    slice of every parameter back from the last good copy, as the original implementation
    does; Adam's moments are kept, except that non-finite entries (left by NaN gradients)
    are zeroed. The caller skips the run's update at this step. Healthy runs refresh their
    good copy.
    """
    R = len(books)
    bad = [not math.isfinite(v) or v > factor * b.good_loss for v, b in zip(values, books)]
    with torch.no_grad():
        for p, g in zip(net.parameters(), good):
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
    for b, is_bad, v in zip(books, bad, values):
        if is_bad:
            b.recoveries.append(step)
        else:
            b.good_loss = v
    return bad


def make_optimizer(params: Iterable[torch.nn.Parameter], config: FitConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused (single-kernel) implementation on the fast path where it exists."""
    fused = config.fast and device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=config.lr, fused=True if fused else None)


def resolve_layout(channels_last: bool | None, precision: str, device: torch.device) -> bool:
    """``None`` (auto): channels-last where it pays — bf16 or CUDA; NCHW for fp32 on a CPU.

    Measured on a 2-core AVX-512 CPU without native bf16, channels-last made the fp32 step
    slower (``benchmarks/RESULTS.md``), so it is only the default where tensor cores or AMX
    use it.
    """
    if channels_last is not None:
        return channels_last
    return precision == "bf16" or device.type == "cuda"


def enable_fast_math(device: torch.device) -> None:
    """Process-wide settings of the fast path: TF32 matmuls/convolutions and cuDNN autotuning on
    CUDA. (These change numerics only at TF32's 10-bit mantissa, and only on CUDA.)"""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
