"""Forward operators ``A`` of the measurement model ``y = A(x) + n``.

The fit loop minimises ``||A(f_θ(z)) − y||²``; the operator is the only thing that changes
between inverse problems (after deepinv's ``physics`` objects):

* :class:`Identity` — denoising;
* :class:`Mask` — inpainting, ``m ⊙ x``;
* :class:`Downsample` — super-resolution, the anti-aliased Lanczos shrink of the original DIP;
* :class:`Blur` — deblurring, ``k * x`` with a given kernel.

An operator maps an image of its *domain* shape (what the network outputs) to a measurement;
:meth:`Operator.domain_shape` gives the former from the latter. Pixel-wise operators
(``pixelwise = True``) can also be restricted to a random subset of pixels, which minibatch
fitting of coordinate models needs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import DipscopeError
from ..runtime import derive_seed
from .kernels import lanczos_taps


class Operator:
    """Base class: ``A(x)`` for a batch ``x`` of shape (N, C, *spatial)."""

    pixelwise: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def domain_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The (C, H, W) of ``x`` whose measurement ``A(x)`` has ``shape`` (the same, by default)."""
        return tuple(shape)

    def restrict(self, index: torch.Tensor) -> "Operator":
        """The operator acting on pixels ``index`` of the flattened image only (pixel-wise operators)."""
        raise DipscopeError(f"{type(self).__name__} is not pixel-wise: it cannot be fitted on pixel minibatches")

    def to(self, device: torch.device) -> "Operator":
        """Move the operator's tensors to ``device`` (in place) and return it."""
        return self


class Identity(Operator):
    """``A = I``: denoising."""

    pixelwise = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restrict(self, index: torch.Tensor) -> "Identity":
        return self


class Mask(Operator):
    """``A(x) = m ⊙ x`` with a fixed 0/1 mask ``m`` of shape (C or 1, H, W): inpainting.

    Examples
    --------
    >>> import torch
    >>> A = Mask(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    >>> A(torch.full((1, 1, 2, 2), 0.5))
    tensor([[[[0.5000, 0.0000],
              [0.0000, 0.5000]]]])

    """

    pixelwise = True

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.reshape(self.mask.shape[0], *x.shape[2:]).to(x.dtype)

    @classmethod
    def random(cls, shape: Sequence[int], drop: float, seed: int = 0) -> "Mask":
        """Drop each value of a (C, H, W) image independently with probability ``drop`` — the
        original DIP's Bernoulli mask (per channel value, as its ``get_bernoulli_mask``), drawn
        from the ``mask`` stream of ``seed``."""
        if not 0 <= drop < 1:
            raise DipscopeError(f"the fraction of dropped pixels must be in [0, 1), not {drop}")
        gen = torch.Generator().manual_seed(derive_seed(seed, "mask"))
        return cls((torch.rand(tuple(shape), generator=gen) >= drop).float())

    def restrict(self, index: torch.Tensor) -> "Mask":
        return Mask(self.mask.flatten(1)[:, index])

    def to(self, device: torch.device) -> "Mask":
        self.mask = self.mask.to(device)
        return self


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Convolve every channel of (N, C, H, W) ``x`` with the 2-D ``kernel`` (no padding)."""
    c = x.shape[1]
    weight = kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, stride=stride, groups=c)


class Downsample(Operator):
    """``A(x)`` = shrink ×``factor`` with the separable Lanczos-2 filter of the original DIP
    super-resolution (its ``Downsampler(kernel_type='lanczos2', phase=0.5, preserve_size=True)``).

    The filter is the outer product of :func:`~dipscope.physics.kernels.lanczos_taps` (``4·f``
    taps); the image's borders are extended by replicating the edge pixels by ``3f/2`` on each
    side, and the filter is applied at stride ``f``, so an ``H × W`` image gives
    ``H/f × W/f``. The factor must be even (the half-pixel-phase filter is then centred on
    every block of ``f × f`` pixels).

    Examples
    --------
    >>> import torch
    >>> A = Downsample(4)
    >>> A(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 3, 16, 16])
    >>> A.domain_shape((3, 16, 16))                       # the network's output is 4× larger
    (3, 64, 64)

    """

    def __init__(self, factor: int) -> None:
        if factor < 2 or factor % 2:
            raise DipscopeError(f"the super-resolution factor must be even (2, 4, 8, …), not {factor}")
        self.factor = factor
        taps = lanczos_taps(factor, support=2)
        self.kernel = torch.outer(taps, taps).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pad = 3 * self.factor // 2
        return _depthwise(F.pad(x, (pad,) * 4, mode="replicate"), self.kernel, stride=self.factor)

    def domain_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        c, h, w = shape
        return c, h * self.factor, w * self.factor

    def to(self, device: torch.device) -> "Downsample":
        self.kernel = self.kernel.to(device)
        return self


class Blur(Operator):
    """``A(x) = k * x``: convolution with a 2-D kernel ``k`` (odd sides, summing to 1), the
    image's borders reflected so that ``A(x)`` keeps the size of ``x``."""

    def __init__(self, kernel: torch.Tensor) -> None:
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise DipscopeError(f"a blur kernel must be 2-D with odd sides, not {tuple(kernel.shape)}")
        self.kernel = kernel.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.kernel.shape[0] // 2, self.kernel.shape[1] // 2
        if min(x.shape[-2:]) <= max(ph, pw):
            raise DipscopeError(f"a {x.shape[-2]}×{x.shape[-1]} image is too small for a "
                                f"{self.kernel.shape[0]}×{self.kernel.shape[1]} blur kernel")
        return _depthwise(F.pad(x, (pw, pw, ph, ph), mode="reflect"), self.kernel.flip(0, 1))

    def to(self, device: torch.device) -> "Blur":
        self.kernel = self.kernel.to(device)
        return self
