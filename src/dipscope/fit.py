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
jumps by more than a factor, the last good weights are reloaded and Adam's moments reset). The network's sides are
padded up to its multiple and its output cropped back, so every H×W works; the loss is taken
on the crop only.

Observers (:class:`Callback`) see a :class:`FitState` every ``k`` steps and may ask the loop to
stop. The loop itself reads values back from the device only at those observation steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch

from . import metrics as M
from .errors import DipscopeError
from .images import crop_padding, check_min_size
from .models import ModelSpec, build, coordinate_grid, estimate_memory, input_shape
from .operators import Identity, Operator
from .runtime import autocast, describe_device, resolve_device, resolve_precision


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
    precision : ``fp32``, ``bf16`` (autocast, fp32 weights and loss) or ``auto``.
    channels_last : use the channels-last memory layout for convolutional networks.
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
    precision: str = "fp32"
    channels_last: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 0:
            raise DipscopeError("steps must be ≥ 0")
        if not self.lr > 0:
            raise DipscopeError("the learning rate must be > 0")
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
    config.validate()
    operator = operator or Identity()
    if target.ndim != 3:
        raise DipscopeError(f"the target must be a (C, H, W) image, got shape {tuple(target.shape)}")
    c, h, w = target.shape
    what = f"the {spec.levels}-level network" if spec.family == "skip" else f"the {spec.family} model"
    check_min_size(h, w, spec.min_side, what)
    if clean is not None and clean.shape != target.shape and isinstance(operator, Identity):
        raise DipscopeError(f"the clean image is {tuple(clean.shape)} but the target is {tuple(target.shape)}")
    if config.pixel_batch and spec.input_kind != "coordinates":
        raise DipscopeError("pixel minibatches need a coordinate model (relunet)")

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    out_shape, padding = padded_shape(spec, target.shape)
    need = estimate_memory(spec, out_shape, config.pixel_batch)
    free = available_memory(device)
    if free is not None and need > free:
        raise DipscopeError(
            f"this configuration needs about {need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB "
            f"is free on {device.type}; use a smaller image, model or width"
        )

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    net = build(spec, out_shape).to(device)
    n_parameters = sum(p.numel() for p in net.parameters())
    z = _network_input(spec, out_shape, config, gen).to(device)
    channels_last = config.channels_last and spec.family == "skip"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
    y = target.to(device=device, dtype=torch.float32)[None]
    op = operator.to(device)
    dev_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    clean_ref = clean.detach().cpu().float() if clean is not None else None

    def forward(inp: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            out = net(inp)
        return crop_padding(out.float(), padding)

    @torch.no_grad()
    def full_output() -> torch.Tensor:
        return forward(z)[0]

    pixel_batch = config.pixel_batch
    y_flat = y.flatten(2)
    z_flat = z.flatten(2)
    n_pixels = h * w
    losses = torch.zeros(config.steps, device=device)
    history: list[dict[str, float]] = []
    ema_out: torch.Tensor | None = None
    best: tuple[float, int, torch.Tensor] | None = None
    recoveries: list[int] = []
    good_params = [p.detach().clone() for p in net.parameters()] if config.recover_divergence else []
    good_loss = math.inf
    interrupted = stopped = False
    step = 0
    start = time.perf_counter()
    last_out: torch.Tensor | None = None

    def make_state(step: int, loss: float, current: torch.Tensor | None) -> FitState:
        out_fn = (lambda: current[0]) if current is not None else full_output
        return FitState(step, config.steps, loss, net, out_fn, lambda: None if ema_out is None else ema_out[0])

    def record(state: FitState) -> None:
        nonlocal best
        row: dict[str, float] = {"step": state.step, "loss": state.loss, "seconds": time.perf_counter() - start}
        if clean_ref is not None:
            out = state.output.detach().cpu()
            row["psnr"] = M.psnr(out, clean_ref)
            if ssim:
                row["ssim"] = M.ssim(out, clean_ref)
            if best is None or row["psnr"] > best[0]:
                best = (row["psnr"], state.step, out.clone())
            if state.ema is not None:
                ema_cpu = state.ema.detach().cpu()
                row["psnr_ema"] = M.psnr(ema_cpu, clean_ref)
                if ssim:
                    row["ssim_ema"] = M.ssim(ema_cpu, clean_ref)
        state.metrics.update(row)
        history.append(row)

    def observe(state: FitState) -> bool:
        record(state)
        want_stop = False
        k = state.step // config.observe_every
        for cb in callbacks:
            if k % max(cb.every, 1) == 0 and cb.observe(state):
                want_stop = True
        return want_stop

    init_state = make_state(0, float("nan"), None)
    for cb in callbacks:
        cb.on_start(init_state)
    try:
        for step in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            if pixel_batch:
                idx = torch.randint(0, n_pixels, (pixel_batch,), device=device, generator=dev_gen)
                with autocast(precision, device):
                    pred = net(z_flat[:, :, idx]).float()
                loss = torch.mean((op.restrict(idx)(pred) - y_flat[:, :, idx]) ** 2)
                out = None
            else:
                inp = z
                if config.reg_noise_std > 0:
                    inp = z + config.reg_noise_std * torch.randn(z.shape, device=device, generator=dev_gen)
                out = forward(inp)
                loss = torch.mean((op(out) - y) ** 2)
                out = out.detach()
                if config.ema is not None:
                    ema_out = out.clone() if ema_out is None else ema_out.mul_(config.ema).add_(out, alpha=1 - config.ema)
            losses[step] = loss.detach()

            if step % config.observe_every == 0:
                loss_value = float(loss.detach())
                if config.recover_divergence and (
                    not math.isfinite(loss_value) or loss_value > config.divergence_factor * good_loss
                ):
                    with torch.no_grad():
                        for p, g in zip(net.parameters(), good_params):
                            p.copy_(g)
                    optimizer.state.clear()  # the moments may hold NaN/inf too: restart Adam
                    recoveries.append(step)
                    continue
                if config.recover_divergence:
                    with torch.no_grad():
                        for p, g in zip(net.parameters(), good_params):
                            g.copy_(p)
                    good_loss = loss_value
                if pixel_batch and config.ema is not None:
                    full = full_output()[None]
                    ema_out = full.clone() if ema_out is None else ema_out.mul_(config.ema).add_(full, alpha=1 - config.ema)
                if observe(make_state(step, loss_value, out)):
                    stopped = True
                    break
            loss.backward()
            optimizer.step()
        else:
            step = config.steps
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.perf_counter() - start

    steps_done = step
    final = full_output()
    final_state = make_state(steps_done, float(torch.mean((op(final[None]) - y) ** 2)), final[None])
    if not stopped and not interrupted and steps_done % config.observe_every == 0 and config.steps > 0:
        observe(final_state)
    elif not any(r["step"] == steps_done for r in history):
        record(final_state)
    for cb in callbacks:
        cb.on_end(final_state)

    if history and clean_ref is not None:
        history[-1]["psnr_final"] = history[-1].get("psnr", float("nan"))
        if "psnr_ema" in history[-1]:
            history[-1]["psnr_ema_final"] = history[-1]["psnr_ema"]
    return FitResult(
        final=final.detach().cpu(),
        ema=None if ema_out is None else ema_out[0].detach().cpu(),
        best=None if best is None else best[2],
        best_step=None if best is None else best[1],
        best_psnr=None if best is None else best[0],
        history=history,
        losses=losses[:steps_done].cpu().numpy(),
        steps_done=steps_done,
        interrupted=interrupted,
        stopped_early=stopped,
        recoveries=recoveries,
        seconds=seconds,
        device=describe_device(device),
        precision=precision,
        n_parameters=n_parameters,
    )


def config_to_dict(config: FitConfig) -> dict[str, Any]:
    return asdict(config)
