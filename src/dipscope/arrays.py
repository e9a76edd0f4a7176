"""The front door's conversions: what a notebook holds, to the library's images and back.

Inside the library an image is a float32 tensor (C, H, W) in [0, 1], C = 1 or 3. A caller may
hold instead

* a NumPy array (H, W) or (H, W, C), ``uint8`` (0–255) or floating point in [0, 1];
* a torch tensor (C, H, W), ``uint8`` or floating point in [0, 1];
* a PIL image (modes ``L``, ``RGB``, and ``I;16``/``F`` read as numbers).

:func:`as_tensor` checks such an image once (type, layout, range, finite values; one
:class:`~dipscope.errors.DipscopeError` naming the parameter) and returns the library's tensor
with an :class:`ImageKind` that remembers the caller's type, dtype and layout;
:func:`as_caller` turns a result back into that kind. Integers are mapped as ``q / 255`` and back
as ``round(255 · clip(x, 0, 1))`` — the quantisation of :func:`dipscope.images.write_image`, so a
``uint8`` result equals, byte for byte, the PNG a run directory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import DipscopeError
from .images import to_uint8


@dataclass(frozen=True)
class ImageKind:
    """The caller's kind of image: ``library`` (``numpy``, ``torch`` or ``pil``), ``dtype`` (the
    array's or tensor's dtype; ``uint8`` for PIL) and ``layout`` (``HW``, ``HWC`` or ``CHW``)."""

    library: str
    dtype: Any
    layout: str

    @property
    def integer(self) -> bool:
        return self.dtype in (np.uint8, torch.uint8)


def _pil_image_class() -> type | None:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    return Image.Image


def as_tensor(image: Any, name: str = "image") -> tuple[torch.Tensor, ImageKind]:
    """Check ``image`` and return it as a float32 (C, H, W) tensor in [0, 1] on the CPU, with its kind.

    Parameters
    ----------
    image : NumPy array (H, W) / (H, W, C), torch tensor (C, H, W) or PIL image; C = 1 or 3;
        ``uint8``, or floating point with every value finite and in [0, 1].
    name : the parameter's name, for the error message.

    Raises
    ------
    DipscopeError
        For any other type, layout, dtype, channel count, a side under 2 pixels, a value that is
        not finite or outside [0, 1].
    """
    pil = _pil_image_class()
    if pil is not None and isinstance(image, pil):
        return _from_pil(image, name)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise DipscopeError(f"{name}: a torch tensor must be (C, H, W), got shape {tuple(image.shape)}")
        kind = ImageKind("torch", image.dtype, "CHW")
        values = image.detach().cpu()
        chw = values.numpy() if values.dtype != torch.bfloat16 else values.float().numpy()
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise DipscopeError(f"{name}: a NumPy array must be (H, W) or (H, W, C), got shape {image.shape}")
        if image.ndim == 3 and image.shape[-1] not in (1, 3):
            hint = "; for (C, H, W) pass a torch tensor" if image.shape[0] in (1, 3) else ""
            raise DipscopeError(f"{name}: a NumPy array must be (H, W) or (H, W, C) with C = 1 or 3, got shape "
                                f"{image.shape}{hint}")
        kind = ImageKind("numpy", image.dtype.type, "HW" if image.ndim == 2 else "HWC")
        chw = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    else:
        raise DipscopeError(f"{name} must be a NumPy array, a torch tensor or a PIL image, not "
                            f"{type(image).__name__}")
    return _checked(chw, name), kind


def _from_pil(image: Any, name: str) -> tuple[torch.Tensor, ImageKind]:
    mode = image.mode
    if mode in ("L", "RGB"):
        array = np.asarray(image)
    elif mode in ("1",):
        array = np.asarray(image.convert("L"))
    else:
        raise DipscopeError(f"{name}: a PIL image must be grey (mode L) or colour (mode RGB), not mode {mode}")
    chw = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    return _checked(chw, name), ImageKind("pil", np.uint8, "HW" if array.ndim == 2 else "HWC")


def _checked(chw: np.ndarray, name: str) -> torch.Tensor:
    """(C, H, W) samples of any supported dtype as float32 in [0, 1], refusing what is not an image."""
    channels, height, width = chw.shape
    if channels not in (1, 3):
        raise DipscopeError(f"{name} has {channels} channels; dipscope takes grey (1) or colour (3) images")
    if height < 2 or width < 2:
        raise DipscopeError(f"{name} is {height}×{width} pixels; dipscope needs at least 2 pixels per side")
    if chw.dtype == np.uint8:
        values = chw.astype(np.float32) / np.float32(255)
    elif np.issubdtype(chw.dtype, np.floating):
        if not np.isfinite(chw).all():
            raise DipscopeError(f"{name} holds values that are not finite (NaN or infinity)")
        low, high = float(chw.min()), float(chw.max())
        if low < 0 or high > 1:
            raise DipscopeError(f"{name} holds values in [{low:.3g}, {high:.3g}]; give floats in [0, 1] or uint8")
        values = chw.astype(np.float32)
    else:
        raise DipscopeError(f"{name} has {chw.dtype} values; give uint8 (0–255) or floats in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(values))


def as_caller(image: torch.Tensor, kind: ImageKind) -> Any:
    """``image`` (C, H, W) as the caller gave theirs: same library, dtype and layout, clipped to
    [0, 1] (to 0–255 for ``uint8``, rounded as :func:`dipscope.images.to_uint8`)."""
    image = image.detach().cpu().float()
    if kind.library == "pil":
        from PIL import Image

        return Image.fromarray(to_uint8(image))
    if kind.library == "torch":
        if kind.integer:
            return torch.from_numpy(np.ascontiguousarray(np.moveaxis(to_uint8(image).reshape(
                image.shape[1], image.shape[2], -1), -1, 0)))
        return image.clamp(0, 1).to(kind.dtype)
    if kind.integer:
        hwc = to_uint8(image)  # (H, W) for one channel
        return hwc[:, :, None] if kind.layout == "HWC" and hwc.ndim == 2 else hwc
    hwc = np.moveaxis(image.clamp(0, 1).numpy(), 0, -1)
    return (hwc[:, :, 0] if kind.layout == "HW" else hwc).astype(kind.dtype)
