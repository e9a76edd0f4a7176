"""Hand-written backward passes of the skip network's two fixed linear maps: reflection padding
and ×2 bilinear upsampling.

Both maps are linear and have no parameters, so their backward pass is their adjoint applied
to the output gradient. PyTorch's CPU kernels compute those adjoints by scattering every output
pixel's gradient into the input gradient one index at a time; written as a few strided slices
and additions over whole maps they vectorise instead. The forward passes are PyTorch's own.

**Reflection padding** by ``p`` (``x̃_{−j} = x_j``, ``x̃_{n−1+j} = x_{n−1−j}``, ``1 ≤ j ≤ p``)
along one axis has the adjoint

.. math::

    g_x[i] = \\tilde g[i + p] + \\sum_{j=1}^{p} \\big([i = j]\\,\\tilde g[p − j]
             + [i = n − 1 − j]\\,\\tilde g[p + n − 1 + j]\\big),

applied along the width, then along the height. A border pixel's two contributions are added
in the same order as PyTorch's kernel (exact); a corner's four in another order (a rounding
difference of at most one unit in the last place).

**Bilinear ×2 upsampling** with ``align_corners=False`` maps, along one axis of length ``n``,

.. math::

    y[2i] = \\tfrac34 x[i] + \\tfrac14 x[\\max(i − 1, 0)], \\qquad
    y[2i + 1] = \\tfrac34 x[i] + \\tfrac14 x[\\min(i + 1, n − 1)],

and the 2-D map is this 1-D map along the height and along the width (the interpolation
weights are products). Its adjoint along one axis is therefore

.. math::

    g_x[i] = \\tfrac34 (g[2i] + g[2i + 1]) + \\tfrac14 (g[2i − 1] + g[2i + 2]),

with ``g[−1]`` read as ``g[0]`` and ``g[2n]`` as ``g[2n − 1]`` (the clamped edges), applied
along the width, then the height. It sums the same terms as PyTorch's kernel in another order:
the gradients agree to float rounding, not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reflection_pad_adjoint(grad: torch.Tensor, pad: int) -> torch.Tensor:
    """The adjoint of reflection padding by ``pad`` on both sides of the last two axes of ``grad``
    (shape ``(..., H + 2p, W + 2p)``): the gradient of the unpadded ``(..., H, W)`` input."""
    p = pad
    cols = grad[..., p:-p].clone()  # fold the padded columns back, over the padded height
    w = cols.shape[-1]
    for j in range(1, p + 1):
        cols[..., j] += grad[..., p - j]
        cols[..., w - 1 - j] += grad[..., p + w - 1 + j]
    out = cols[..., p:-p, :].clone()  # then the padded rows
    h = out.shape[-2]
    for j in range(1, p + 1):
        out[..., j, :] += cols[..., p - j, :]
        out[..., h - 1 - j, :] += cols[..., p + h - 1 + j, :]
    return out


class _ReflectionPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, pad: int) -> torch.Tensor:  # type: ignore[override]
        ctx.pad = pad
        return F.pad(x, (pad,) * 4, mode="reflect")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return reflection_pad_adjoint(grad, ctx.pad), None


def reflection_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflection padding of the last two axes by ``pad`` (``pad`` smaller than both sides),
    with the vectorised adjoint as its backward pass."""
    return _ReflectionPad.apply(x, pad)


def _upsample2_adjoint(g: torch.Tensor, dim: int) -> torch.Tensor:
    """The adjoint of ×2 bilinear upsampling (``align_corners=False``) along axis ``dim`` (< 0)."""
    def at(t: torch.Tensor, index: slice | int) -> torch.Tensor:
        return t[(Ellipsis, index) + (slice(None),) * (-dim - 1)]

    even, odd = at(g, slice(0, None, 2)), at(g, slice(1, None, 2))
    out = torch.add(even, odd).mul_(0.75)
    at(out, slice(1, None)).add_(at(odd, slice(None, -1)), alpha=0.25)  # y[2i − 1] = ¾ x[i − 1] + ¼ x[i]
    at(out, slice(None, -1)).add_(at(even, slice(1, None)), alpha=0.25)  # y[2i + 2] = ¾ x[i + 1] + ¼ x[i]
    at(out, 0).add_(at(even, 0), alpha=0.25)  # y[0] = ¾ x[0] + ¼ x[0] (clamped)
    at(out, -1).add_(at(odd, -1), alpha=0.25)  # y[2n − 1] = ¾ x[n − 1] + ¼ x[n − 1]
    return out


def upsample2_bilinear_adjoint(grad: torch.Tensor) -> torch.Tensor:
    """The adjoint of ×2 bilinear upsampling (``align_corners=False``) of the last two axes:
    ``(..., 2H, 2W)`` → ``(..., H, W)``."""
    return _upsample2_adjoint(_upsample2_adjoint(grad, -1), -2)


class _Upsample2Bilinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous()
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = upsample2_bilinear_adjoint(grad)
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        return out.contiguous(memory_format=fmt)


def upsample2_bilinear(x: torch.Tensor) -> torch.Tensor:
    """×2 bilinear upsampling (``align_corners=False``) of a ``(N, C, H, W)`` map, with the
    vectorised adjoint as its backward pass."""
    return _Upsample2Bilinear.apply(x)
