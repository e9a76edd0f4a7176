"""The per-layer maps of the NNGP recursion, on kernels stored as float64 tensors.

A kernel of a ``d``-dimensional signal of spatial shape ``sp`` is a tensor of shape
``(*sp, *sp)``; ``K[i, j] = E[h_c(i) h_c(j)]`` for any channel ``c`` (channels are i.i.d. in the
infinite-width limit). Notation: ``V`` is the kernel of the activation's output.
"""

from __future__ import annotations

import math

import torch

from ..errors import DipscopeError

DTYPE = torch.float64


# ----------------------------------------------------------------------------- index maps
def tap_index(n: int, size: int, stride: int, pad: str) -> torch.Tensor:
    """``idx[u, i]``: the input sample read by tap ``u`` of output ``i`` (``-1``: zero padding).

    PyTorch's 'same' convolution with ``p = (size−1)/2``: output ``i`` reads input
    ``s·i + u − p`` for ``u = 0 … size−1``, mapped into range by the padding: reflection
    (``−j`` / ``2(n−1)−j``, without repeating the edge, as ``ReflectionPad``), circular
    (``j mod n``) or zero (``−1``).
    """
    p = (size - 1) // 2
    n_out = (n + 2 * p - size) // stride + 1
    j = stride * torch.arange(n_out)[None, :] + torch.arange(size)[:, None] - p
    if pad == "circular":
        return j % n
    if pad == "reflection":
        if p > n - 1:
            raise DipscopeError(f"reflection padding of {p} needs a signal longer than {p} samples, not {n}")
        j = torch.where(j < 0, -j, j)
        return torch.where(j > n - 1, 2 * (n - 1) - j, j)
    return torch.where((j < 0) | (j > n - 1), torch.full_like(j, -1), j)


def conv(K: torch.Tensor, shape: tuple[int, ...], size: int, stride: int, pad: str, sigma_w2: float,
         sigma_b2: float) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``K'(t₁, t₂) = (σ_w²/|U|) Σ_{u∈U} V(t₁+u, t₂+u) + σ_b²`` — the *same* shift at both ends.

    Derivation: ``h'_j(t) = Σ_c Σ_u W_{j,c,u} x_c(t+u) + b_j`` with independent weights
    ``N(0, σ_w²/(C|U|))``, so only the terms with equal ``(c, u)`` survive the expectation.
    Padded taps read zero (zero padding) or a mirrored / wrapped sample.
    """
    d = len(shape)
    idx = [tap_index(n, size, stride, pad) for n in shape]
    out = tuple(int(i.shape[1]) for i in idx)
    # One zero slot at the end of every axis serves the zero-padded taps (index −1).
    Kp = torch.nn.functional.pad(K, [0, 1] * (2 * d))
    acc = torch.zeros(out + out, dtype=K.dtype, device=K.device)
    for taps in torch.cartesian_prod(*[torch.arange(size)] * d).reshape(-1, d):
        rows = [idx[a][int(taps[a])] for a in range(d)]
        grids = torch.meshgrid(*rows, *rows, indexing="ij")
        acc += Kp[grids]
    return acc * (sigma_w2 / size ** d) + sigma_b2, out


# ----------------------------------------------------------------------------- activations
def _pair(K: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    n = math.prod(shape)
    diag = K.reshape(n, n).diagonal().clamp_min(0).sqrt().reshape(shape)
    d = len(shape)
    norms = diag.reshape(shape + (1,) * d) * diag.reshape((1,) * d + shape)
    return norms, (K / norms.clamp_min(1e-300)).clamp(-1.0, 1.0)


def relu(K: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Arc-cosine kernel (Cho & Saul, 2009): for ``(u, v) ~ N(0, [[k₁₁, k₁₂], [k₁₂, k₂₂]])``,

    ``E[relu(u) relu(v)] = √(k₁₁k₂₂)/(2π) · (sin θ + (π − θ) cos θ)``, ``θ = arccos(k₁₂/√(k₁₁k₂₂))``.
    """
    norms, c = _pair(K, shape)
    theta = torch.arccos(c)
    return norms * (torch.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)


def leaky_relu(K: torch.Tensor, shape: tuple[int, ...], alpha: float) -> torch.Tensor:
    """``E[φ(u)φ(v)] = (1−α)² V_ReLU + α k₁₂`` for ``φ(x) = max(x, 0) + α min(x, 0)``.

    Derivation: ``φ(x) = (1−α) relu(x) + α x``, so
    ``E[φ(u)φ(v)] = (1−α)² E[relu u relu v] + α(1−α)(E[relu(u) v] + E[u relu(v)]) + α² k₁₂``.
    By the symmetry ``(u, v) → (−u, −v)``, ``E[u v 1{u>0}] = E[u v 1{u<0}] = k₁₂/2``, so each
    cross term is ``k₁₂/2`` and the sum is ``(1−α)² V_ReLU + (α(1−α) + α²) k₁₂``.
    """
    return (1 - alpha) ** 2 * relu(K, shape) + alpha * K


def batchnorm(K: torch.Tensor, shape: tuple[int, ...], eps: float) -> torch.Tensor:
    """BatchNorm of a batch of one, **approximated**: ``y = (h − m)/√(E[s²] + ε)``.

    BN maps each channel to ``(h − m)/√(s² + ε)`` with its spatial mean ``m`` and variance ``s²``.
    Centring is linear and exact: ``K_c = P K P`` with ``P = I − 11ᵀ/N``. The division by the
    *random* ``s`` is replaced by the division by ``√E[s²] = √(tr K_c / N)``, which is exact when
    ``s²`` concentrates (correlation length ≪ N); the relative error grows like the number of
    correlation lengths per map to the power −1/2, so it is poor on the deepest, smallest maps.
    """
    d = len(shape)
    rows = tuple(range(d))
    cols = tuple(range(d, 2 * d))
    Kc = K - K.mean(dim=rows, keepdim=True) - K.mean(dim=cols, keepdim=True) + K.mean()
    n = math.prod(shape)
    var = Kc.reshape(n, n).diagonal().mean()
    return Kc / (var + eps)


def dense(K: torch.Tensor, shape: tuple[int, ...], out_shape: tuple[int, ...], sigma_w2: float,
          sigma_b2: float) -> torch.Tensor:
    """Dense layer: ``K'(a, b) = δ_ab σ_w² mean_i V(i, i) + σ_b²`` — distinct units are uncorrelated."""
    n = math.prod(shape)
    m = math.prod(out_shape)
    level = sigma_w2 * K.reshape(n, n).diagonal().mean()
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    return (level * eye + sigma_b2).reshape(out_shape + out_shape)


# ----------------------------------------------------------------------------- resampling
def resample_matrix(n: int, kind: str, factor: int) -> torch.Tensor:
    """The matrix ``A`` (n_out × n) of one axis of a fixed linear resampling.

    * ``nearest`` ×s: ``A[i, ⌊i/s⌋] = 1`` (PyTorch ``mode='nearest'``);
    * ``linear`` ×s, ``align_corners=False``: source ``x = max((i + ½)/s − ½, 0)``, weights
      ``1 − λ`` at ``⌊x⌋`` and ``λ = x − ⌊x⌋`` at ``min(⌊x⌋ + 1, n − 1)``;
    * ``avg`` ÷s: ``A[i, s·i + a] = 1/s`` for ``a < s`` (``floor`` output length);
    * ``decimate`` ÷s: ``A[i, s·i] = 1`` (``x[::s]``: ``⌈n/s⌉`` outputs).
    """
    s = factor
    if kind in ("nearest", "linear"):
        m = n * s
        A = torch.zeros(m, n, dtype=DTYPE)
        i = torch.arange(m)
        if kind == "nearest":
            A[i, i // s] = 1.0
            return A
        x = ((i.to(DTYPE) + 0.5) / s - 0.5).clamp_min(0.0)
        i0 = x.floor().long().clamp_max(n - 1)
        lam = x - i0.to(DTYPE)
        i1 = (i0 + 1).clamp_max(n - 1)
        A.index_put_((i, i0), 1.0 - lam, accumulate=True)
        A.index_put_((i, i1), lam, accumulate=True)
        return A
    m = n // s if kind == "avg" else (n - 1) // s + 1
    if m < 1:
        raise DipscopeError(f"cannot downsample {n} samples by {s}")
    A = torch.zeros(m, n, dtype=DTYPE)
    i = torch.arange(m)
    if kind == "avg":
        for a in range(s):
            A[i, s * i + a] = 1.0 / s
    else:
        A[i, s * i] = 1.0
    return A


def apply_separable(K: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
    """``K' = A K Aᵀ`` for ``A = A_1 ⊗ … ⊗ A_d`` applied axis by axis (rows and columns)."""
    d = len(mats)
    for a, A in enumerate(mats):
        A = A.to(K)
        K = torch.movedim(torch.tensordot(A, K, dims=([1], [a])), 0, a)
        K = torch.movedim(torch.tensordot(A, K, dims=([1], [d + a])), 0, d + a)
    return K


# ----------------------------------------------------------------------------- inputs
def gaussian_circulant(n: int, sigma: float) -> torch.Tensor:
    """Circulant ``G`` of the periodised Gaussian ``g(m) ∝ Σ_k exp(−(m + kn)²/(2σ²))``, scaled
    so ``G Gᵀ`` has unit diagonal (``σ = 0``: the identity)."""
    if sigma <= 0:
        return torch.eye(n, dtype=DTYPE)
    m = torch.arange(n, dtype=DTYPE)
    m = torch.minimum(m, n - m)
    reps = int(math.ceil(6 * sigma / n)) + 1
    g = sum(torch.exp(-((m + k * n) ** 2) / (2 * sigma ** 2)) for k in range(-reps, reps + 1))
    g = g / g.square().sum().sqrt()
    t = torch.arange(n)
    return g[(t[:, None] - t[None, :]) % n]


def input_kernel(kind: str, shape: tuple[int, ...], sigma: float = 0.0) -> torch.Tensor:
    """Per-channel input covariance: white ``δ``, smoothed ``G Gᵀ`` (per axis, separable), or
    the mean product of coordinates ``(1/d) Σ_a p_a(t₁) p_a(t₂)`` on ``linspace(0, 1)`` grids."""
    d = len(shape)
    n = math.prod(shape)
    if kind == "white":
        return torch.eye(n, dtype=DTYPE).reshape(shape + shape)
    if kind == "smooth":
        K = torch.eye(n, dtype=DTYPE).reshape(shape + shape)
        return apply_separable(K, [gaussian_circulant(s, sigma) for s in shape])
    axes = torch.meshgrid(*[torch.linspace(0, 1, s, dtype=DTYPE) for s in shape], indexing="ij")
    P = torch.stack([a.reshape(-1) for a in axes], dim=1)
    return (P @ P.T / d).reshape(shape + shape)
