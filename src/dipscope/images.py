"""Reading, writing and padding images.

Conventions
-----------
Inside dipscope an image is a ``torch.float32`` tensor of shape ``(C, H, W)`` with values in
``[0, 1]``, where ``C`` is 1 (grey) or 3 (RGB). Integer files are mapped linearly onto that
range, :math:`x = q / (2^b - 1)` for a ``b``-bit sample ``q``, and written back with
:math:`q = \\operatorname{round}(x (2^b - 1))`, so an 8- or 16-bit image survives a read/write
round trip bit for bit.

NumPy arrays follow the channel-last convention instead: ``(H, W, C)`` or ``(H, W)``.

Why one module of ~450 lines: it is the one place that knows image files — PNG (8 and 16 bit,
which Pillow cannot decode in colour), JPEG with EXIF orientation, TIFF series, decompression
bombs, alpha channels — and every reader turns a file's failure into one clear error line. Split
by format, the shared conversions and error wording would be repeated in each part.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
import torch
import torch.nn.functional as F

from dipscope.errors import DipscopeError

__all__ = [
    "read_image",
    "write_image",
    "to_uint8",
    "to_numpy_hwc",
    "pad_to_multiple",
    "centred_padding",
    "crop_padding",
    "check_min_size",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Pillow modes that are colour but not RGB: convert them on reading.
_CONVERT_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV"}
_TIFF_SUFFIXES = {".tif", ".tiff"}
_PNG_SUFFIXES = {".png"}


# --------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read a PNG, JPEG or TIFF file as a float image in ``[0, 1]``.

    Samples are scaled as :math:`x = q / 255` (8 bit), :math:`x = q / 65535` (16 bit) or
    :math:`x = \\operatorname{clip}(q, 0, 1)` (floating point); boolean images map to 0 and 1.
    An alpha channel (grey + alpha or RGBA) is dropped with a :class:`UserWarning`.

    Parameters
    ----------
    path
        File to read. The format is recognised from its content, not its extension.

    Returns
    -------
    torch.Tensor
        ``float32`` tensor of shape ``(C, H, W)``, ``C`` = 1 (grey) or 3 (RGB), ``H, W >= 2``.

    Raises
    ------
    DipscopeError
        If the path is missing, a directory or not a regular file (a FIFO), the file is not a readable image, it is a
        16-bit colour PNG (which Pillow cannot decode), its sample type or channel count is
        unsupported, it contains NaN, or either side is shorter than 2 pixels.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise DipscopeError(f"image {p} does not exist")
    if p.is_dir():
        raise DipscopeError(f"image path {p} is a directory, not a file")
    if not p.is_file():  # a FIFO, socket or device: reading it could block for ever
        raise DipscopeError(f"image path {p} is not a regular file (a pipe, socket or device)")
    try:
        with open(p, "rb") as fh:
            header = fh.read(32)
    except OSError as exc:
        raise DipscopeError(f"cannot open image {p}: {exc.strerror or exc}") from None

    if header.startswith(_TIFF_SIGNATURES):
        array = _read_tiff(p)
    elif header.startswith(_PNG_SIGNATURE) and _is_16bit_colour_png(header):
        array = _read_16bit_colour_png(p)
    else:
        array = _read_pillow(p)
    return torch.from_numpy(_to_chw_float(array, p))


def _is_16bit_colour_png(header: bytes) -> bool:
    """True for a PNG whose IHDR says 16-bit RGB, grey+alpha or RGBA (colour types 2, 4, 6)."""
    # signature (8) + chunk length (4) + b"IHDR" (4) + width (4) + height (4) + depth + type
    if len(header) < 26 or header[12:16] != b"IHDR":
        return False
    return header[24] == 16 and header[25] in (2, 4, 6)


def _read_16bit_colour_png(path: Path) -> np.ndarray:
    """Read a 16-bit colour PNG with a plugin that keeps 16 bits, or fail clearly.

    Pillow silently reduces such files to 8 bits, so it is never used for them.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(iio.imread(path, plugin="PNG-FI"))
    except Exception:
        array = None
    if array is None or array.dtype != np.uint16:
        raise DipscopeError(
            f"cannot read {path}: 16-bit colour PNG is not supported by the installed "
            "image libraries; save it as 16-bit TIFF (.tif) instead"
        )
    return array


def _read_pillow(path: Path) -> np.ndarray:
    """Read the first frame of any Pillow-readable file, honouring EXIF orientation."""
    try:
        file = iio.imopen(path, "r", plugin="pillow")
    except PermissionError:
        raise DipscopeError(f"cannot read image {path}: permission denied") from None
    except Exception as exc:
        if _caused_by_size(exc):
            raise DipscopeError(_too_large(path)) from None
        raise DipscopeError(
            f"cannot read {path}: not a recognised image file (PNG, JPEG or TIFF expected)"
        ) from None
    try:
        with file:
            mode = file.metadata(index=0).get("mode")
            target = "RGB" if mode in _CONVERT_TO_RGB else None
            return np.asarray(file.read(index=0, mode=target, rotate=True))
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise DipscopeError(f"cannot read {path}: corrupt image data ({_short(exc)})") from None


def _caused_by_size(exc: BaseException | None) -> bool:
    """True when Pillow refused the file for its pixel count (a decompression-bomb guard)."""
    from PIL import Image

    while exc is not None:
        if isinstance(exc, Image.DecompressionBombError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _too_large(path: Path) -> str:
    """The message for an image whose header claims more pixels than Pillow decodes safely."""
    from PIL import Image

    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
        size = f"{w}×{h} px ({w * h:,} pixels)"
    except Exception:  # noqa: BLE001 - the size is only for the message
        size = "larger"
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return (f"image {path} is too large to read: {size}, more than the {limit:,} pixels allowed "
            "(a guard against decompression bombs); shrink or crop it first")


def _read_tiff(path: Path) -> np.ndarray:
    """Read the first series of a TIFF as ``(H, W)`` or ``(H, W, S)``."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array = np.asarray(series.asarray())
            axes = series.axes
    except PermissionError:
        raise DipscopeError(f"cannot read image {path}: permission denied") from None
    except Exception as exc:
        raise DipscopeError(f"cannot read TIFF {path}: {_short(exc)}") from None
    if array.size == 0:
        raise DipscopeError(f"image {path} is empty (shape {array.shape})")
    # Drop singleton axes other than the image plane, then put samples last.
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] != 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if axes in ("SYX", "CYX"):
        array = np.moveaxis(array, 0, -1)
    elif axes not in ("YX", "YXS", "YXC"):
        raise DipscopeError(
            f"TIFF {path} has axes {axes} with shape {array.shape}; "
            "dipscope reads one 2-D grey or RGB image"
        )
    return array


def _short(exc: BaseException) -> str:
    """First line of an exception message, or its type name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _to_chw_float(array: np.ndarray, path: Path) -> np.ndarray:
    """Validate a decoded ``(H, W)`` / ``(H, W, S)`` array and make it ``(C, H, W)`` float32."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise DipscopeError(f"image {path} has unsupported shape {array.shape}")
    height, width, channels = array.shape
    if height * width == 0:
        raise DipscopeError(f"image {path} is empty ({height}×{width} pixels)")
    if height < 2 or width < 2:
        raise DipscopeError(
            f"image {path} is {height}×{width} pixels; dipscope needs at least 2 pixels per side"
        )
    if channels in (2, 4):
        warnings.warn(f"image {path} has an alpha channel; dropping it", UserWarning, stacklevel=3)
        array = array[:, :, : channels - 1]
    elif channels not in (1, 3):
        raise DipscopeError(
            f"image {path} has {channels} channels; dipscope reads grey (1) or RGB (3) images"
        )

    if array.dtype == np.uint8:
        out = array.astype(np.float32) / np.float32(255)
    elif array.dtype == np.uint16:
        out = array.astype(np.float32) / np.float32(65535)
    elif array.dtype == np.bool_:
        out = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any():
            raise DipscopeError(f"image {path} contains NaN values")
        out = np.clip(array, 0.0, 1.0).astype(np.float32)
    else:
        raise DipscopeError(
            f"image {path} has {array.dtype} samples; dipscope reads 8-bit, 16-bit or float images"
        )
    return np.ascontiguousarray(np.moveaxis(out, -1, 0))


# --------------------------------------------------------------------------- conversion


def to_numpy_hwc(image: torch.Tensor | np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Convert an image to a channel-last floating NumPy array.

    Parameters
    ----------
    image
        Torch tensor ``(C, H, W)`` or ``(H, W)``, or NumPy array ``(H, W, C)`` or ``(H, W)``.
    dtype
        Floating type of the result (``float32``; metrics use ``float64``).

    Returns
    -------
    numpy.ndarray
        Array of shape ``(H, W, C)``; always three-dimensional, so a grey image gives
        ``(H, W, 1)``. Values are not clipped.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().to("cpu", torch.float64).numpy().astype(dtype, copy=False)
        if array.ndim == 3:
            array = np.moveaxis(array, 0, -1)
        elif array.ndim != 2:
            raise ValueError(f"expected a (C, H, W) or (H, W) tensor, got {tuple(array.shape)}")
    else:
        array = np.asarray(image, dtype=dtype)
        if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(
                f"NumPy images are (H, W, C) with C <= 4, got shape {array.shape}; "
                "pass a torch tensor for (C, H, W)"
            )
        if array.ndim not in (2, 3):
            raise ValueError(f"expected an (H, W, C) or (H, W) array, got shape {array.shape}")
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


def _quantize(image: torch.Tensor | np.ndarray, bit_depth: int) -> np.ndarray:
    """Map ``[0, 1]`` to integers, :math:`q = \\operatorname{round}(\\operatorname{clip}(x, 0, 1)
    (2^b - 1))`; returns ``(H, W)`` for grey and ``(H, W, C)`` otherwise."""
    if bit_depth not in (8, 16):
        raise DipscopeError(f"bit depth must be 8 or 16, got {bit_depth}")
    array = to_numpy_hwc(image, np.float64)
    if np.isnan(array).any():
        raise DipscopeError("cannot convert an image that contains NaN values")
    scale = 255 if bit_depth == 8 else 65535
    q = np.rint(np.clip(array, 0.0, 1.0) * scale)
    q = q.astype(np.uint8 if bit_depth == 8 else np.uint16)
    return q[:, :, 0] if q.shape[-1] == 1 else q


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Quantize an image to 8 bits, :math:`q = \\operatorname{round}(255 \\min(\\max(x, 0), 1))`.

    Parameters
    ----------
    image
        Torch tensor ``(C, H, W)`` / ``(H, W)`` or NumPy array ``(H, W, C)`` / ``(H, W)``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array, ``(H, W)`` for a single channel and ``(H, W, C)`` otherwise (the layout
        image writers and ``matplotlib.pyplot.imshow`` expect).
    """
    return _quantize(image, 8)


# --------------------------------------------------------------------------- writing


def write_image(
    path: str | os.PathLike, image: torch.Tensor | np.ndarray, bit_depth: int = 8
) -> None:
    """Write an image in ``[0, 1]`` to a PNG or TIFF file (chosen by extension).

    Samples are clipped to ``[0, 1]`` and quantized as
    :math:`q = \\operatorname{round}(x (2^b - 1))` with ``b = bit_depth``, so writing an image
    just read from a ``b``-bit file reproduces its pixel values exactly.

    Parameters
    ----------
    path
        Destination ending in ``.png``, ``.tif`` or ``.tiff``; its folder must exist.
    image
        Torch tensor ``(C, H, W)`` / ``(H, W)`` or NumPy array ``(H, W, C)`` / ``(H, W)``,
        with ``C`` = 1 or 3.
    bit_depth
        8 or 16. 16-bit colour is only possible in TIFF (Pillow cannot write 16-bit RGB PNG).

    Raises
    ------
    DipscopeError
        For an unsupported extension or bit depth, a 16-bit colour PNG, a missing parent
        folder, a path that is a directory, NaN values, or a failed write.
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix not in _PNG_SUFFIXES | _TIFF_SUFFIXES:
        raise DipscopeError(f"cannot write {p}: unsupported extension; use .png, .tif or .tiff")
    if not p.parent.is_dir():
        raise DipscopeError(f"cannot write {p}: folder {p.parent} does not exist")
    if p.is_dir():
        raise DipscopeError(f"cannot write {p}: it is a directory")
    data = _quantize(image, bit_depth)
    if data.ndim == 3 and data.shape[-1] != 3:
        raise DipscopeError(f"cannot write {p}: {data.shape[-1]} channels; expected 1 or 3")
    if suffix in _PNG_SUFFIXES and bit_depth == 16 and data.ndim == 3:
        raise DipscopeError(
            f"cannot write {p}: 16-bit colour PNG is not supported; use a .tif path or 8 bits"
        )
    try:
        if suffix in _TIFF_SUFFIXES:
            photometric = "minisblack" if data.ndim == 2 else "rgb"
            tifffile.imwrite(p, data, photometric=photometric)
        else:
            iio.imwrite(p, data, plugin="pillow", extension=".png")
    except OSError as exc:
        raise DipscopeError(f"cannot write {p}: {exc.strerror or _short(exc)}") from None


# --------------------------------------------------------------------------- geometry


def centred_padding(height: int, width: int, multiple: int) -> tuple[int, int, int, int]:
    r"""``(left, right, top, bottom)`` that bring ``height × width`` up to multiples of ``multiple``:
    along an axis of size ``n`` the total :math:`p = \lceil n/m \rceil m - n` is split as
    ``p // 2`` before and ``p - p // 2`` after (the one rule of :func:`pad_to_multiple` and of
    the fit's padded network output)."""
    pad_h, pad_w = -height % multiple, -width % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def pad_to_multiple(
    image: torch.Tensor, multiple: int
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad height and width up to the next multiple of ``multiple``.

    The total padding along an axis of size ``n`` is :math:`p = \\lceil n/m \\rceil m - n`,
    split as ``p // 2`` before and ``p - p // 2`` after. Each axis uses reflection padding
    when both of its pad amounts are smaller than its size (torch's requirement) and edge
    replication otherwise.

    Parameters
    ----------
    image
        Tensor of shape ``(C, H, W)`` or ``(N, C, H, W)``.
    multiple
        Positive integer; 1 returns the image unchanged.

    Returns
    -------
    padded : torch.Tensor
        Tensor whose last two sides are multiples of ``multiple``.
    padding : tuple of int
        ``(left, right, top, bottom)``, the order used by :func:`torch.nn.functional.pad`;
        pass it to :func:`crop_padding` to undo the padding.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if image.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (N, C, H, W) tensor, got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    left, right, top, bottom = centred_padding(height, width, multiple)
    pad_h, pad_w = top + bottom, left + right
    out = image
    if pad_w:
        mode = "reflect" if max(left, right) < width else "replicate"
        out = F.pad(out, (left, right, 0, 0), mode=mode)
    if pad_h:
        mode = "reflect" if max(top, bottom) < height else "replicate"
        out = F.pad(out, (0, 0, top, bottom), mode=mode)
    return out, (left, right, top, bottom)


def crop_padding(image: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Remove the padding added by :func:`pad_to_multiple`.

    Parameters
    ----------
    image
        Tensor ``(..., H, W)``, e.g. ``(C, H, W)``, ``(N, C, H, W)`` or ``(T, C, H, W)``.
    padding
        ``(left, right, top, bottom)`` as returned by :func:`pad_to_multiple`.

    Returns
    -------
    torch.Tensor
        View ``image[..., top:H - bottom, left:W - right]``.
    """
    left, right, top, bottom = padding
    height, width = image.shape[-2:]
    if min(padding) < 0 or top + bottom >= height or left + right >= width:
        raise ValueError(f"padding {padding} does not fit an image of size {height}×{width}")
    return image[..., top : height - bottom, left : width - right]


def check_min_size(height: int, width: int, minimum: int, what: str) -> None:
    """Require :math:`\\min(H, W) \\ge` ``minimum``.

    Parameters
    ----------
    height, width
        Image size in pixels.
    minimum
        Smallest allowed side.
    what
        What needs the size, e.g. ``"a 5-level U-Net"``; it appears in the message.

    Raises
    ------
    DipscopeError
        ``"image is H×W px but {what} needs at least {minimum} px per side"``.
    """
    if height < minimum or width < minimum:
        raise DipscopeError(
            f"image is {height}×{width} px but {what} needs at least {minimum} px per side"
        )
