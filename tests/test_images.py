"""Tests for dipscope.images: reading, writing, padding."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from dipscope.errors import DipscopeError
from dipscope.images import (
    check_min_size,
    crop_padding,
    pad_to_multiple,
    read_image,
    to_numpy_hwc,
    to_uint8,
    write_image,
)

RNG = np.random.default_rng(0)


def _u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _u16(*shape: int) -> np.ndarray:
    return RNG.integers(0, 65536, size=shape, dtype=np.uint16)


def _png_16bit_rgb(path: Path, data: np.ndarray) -> None:
    """Write a minimal 16-bit RGB PNG by hand (Pillow cannot)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    h, w, _ = data.shape
    raw = b"".join(b"\x00" + data[i].astype(">u2").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("name", "data", "bits"),
    [
        ("grey8.png", _u8(6, 7), 8),
        ("rgb8.png", _u8(6, 7, 3), 8),
        ("grey16.png", _u16(6, 7), 16),
        ("rgb16.tif", _u16(6, 7, 3), 16),
        ("grey8.tiff", _u8(6, 7), 8),
    ],
)
def test_round_trip_is_lossless(tmp_path: Path, name: str, data: np.ndarray, bits: int) -> None:
    src = tmp_path / name
    if src.suffix == ".png":
        iio.imwrite(src, data)
    else:
        tifffile.imwrite(src, data, photometric="rgb" if data.ndim == 3 else "minisblack")
    image = read_image(src)
    channels = 3 if data.ndim == 3 else 1
    assert image.dtype == torch.float32
    assert image.shape == (channels, 6, 7)
    expected = np.moveaxis(np.atleast_3d(data), -1, 0) / (2**bits - 1)
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-7)

    dst = tmp_path / ("out_" + name)
    write_image(dst, image, bit_depth=bits)
    back = tifffile.imread(dst) if dst.suffix != ".png" else iio.imread(dst)
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)


def test_read_accepts_str_and_jpeg(tmp_path: Path) -> None:
    data = np.full((8, 9, 3), 128, np.uint8)
    path = tmp_path / "x.jpg"
    iio.imwrite(path, data, quality=95)
    image = read_image(str(path))
    assert image.shape == (3, 8, 9)
    assert abs(float(image.mean()) - 128 / 255) < 0.02


def test_float_tiff_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.array([[-0.5, 0.25], [0.75, 2.0]], np.float32))
    image = read_image(path)
    np.testing.assert_allclose(image[0].numpy(), [[0.0, 0.25], [0.75, 1.0]])


def test_planar_rgb_tiff(tmp_path: Path) -> None:
    data = _u8(3, 4, 5)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(read_image(path).numpy(), data / 255, atol=1e-7)


@pytest.mark.parametrize(("channels", "expected"), [(4, 3), (2, 1)])
def test_alpha_is_dropped_with_warning(tmp_path: Path, channels: int, expected: int) -> None:
    data = _u8(5, 6, channels)
    path = tmp_path / f"alpha{channels}.png"
    iio.imwrite(path, data)
    with pytest.warns(UserWarning, match=path.name):
        image = read_image(path)
    assert image.shape == (expected, 5, 6)
    np.testing.assert_allclose(
        image.numpy(), np.moveaxis(data[:, :, :expected], -1, 0) / 255, atol=1e-7
    )


def test_16bit_rgb_png_keeps_16_bits_or_fails_clearly(tmp_path: Path) -> None:
    data = _u16(4, 5, 3)
    path = tmp_path / "rgb16.png"
    _png_16bit_rgb(path, data)
    try:
        image = read_image(path)
    except DipscopeError as exc:
        assert str(path) in str(exc) and "TIFF" in str(exc)
    else:  # a plugin that keeps 16 bits is installed
        np.testing.assert_allclose(image.numpy(), np.moveaxis(data, -1, 0) / 65535, atol=1e-7)


# --------------------------------------------------------------------------- read errors


def _bad_files(tmp: Path) -> dict[str, Path]:
    files = {"missing": tmp / "nope.png", "directory": tmp / "dir.png"}
    files["directory"].mkdir()
    files["text"] = tmp / "text.png"
    files["text"].write_text("not an image")
    files["empty_file"] = tmp / "empty.jpg"
    files["empty_file"].write_bytes(b"")
    files["one_pixel"] = tmp / "one.png"
    iio.imwrite(files["one_pixel"], _u8(1, 1))
    files["one_row"] = tmp / "row.png"
    iio.imwrite(files["one_row"], _u8(1, 5, 3))
    files["zero_pixels"] = tmp / "zero.tif"
    with pytest.warns(UserWarning):
        tifffile.imwrite(files["zero_pixels"], np.zeros((0, 4), np.uint8))
    files["five_channels"] = tmp / "five.tif"
    tifffile.imwrite(files["five_channels"], _u8(4, 4, 5), photometric="minisblack",
                     planarconfig="contig")
    files["int32"] = tmp / "int32.tif"
    tifffile.imwrite(files["int32"], np.zeros((4, 4), np.int32))
    files["truncated"] = tmp / "truncated.png"
    iio.imwrite(files["truncated"], _u8(32, 32, 3))
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:200])
    files["stack"] = tmp / "stack.tif"
    tifffile.imwrite(files["stack"], _u8(5, 4, 4), photometric="minisblack")
    return files


@pytest.mark.parametrize(
    "case",
    ["missing", "directory", "text", "empty_file", "one_pixel", "one_row", "zero_pixels",
     "five_channels", "int32", "stack", "truncated"],
)
def test_read_errors_name_the_path(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(DipscopeError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    if case in ("one_pixel", "one_row"):
        assert "at least 2 pixels" in message
    if case == "zero_pixels":
        assert "empty" in message


# --------------------------------------------------------------------------- write


def test_write_grey_from_hw_and_numpy(tmp_path: Path) -> None:
    grey = torch.tensor([[0.0, 0.5], [1.0, 0.2]])
    write_image(tmp_path / "a.png", grey)
    np.testing.assert_array_equal(iio.imread(tmp_path / "a.png"), [[0, 128], [255, 51]])
    rgb = np.zeros((2, 3, 3), np.float32)
    rgb[..., 1] = 1.5  # clipped
    write_image(tmp_path / "b.png", rgb)
    assert iio.imread(tmp_path / "b.png")[..., 1].tolist() == [[255] * 3] * 2


@pytest.mark.parametrize(
    ("name", "bits", "fragment"),
    [
        ("no/such/dir/x.png", 8, "does not exist"),
        ("x.bmp", 8, "extension"),
        ("x.png", 12, "bit depth"),
        ("x.png", 16, "16-bit colour PNG"),
    ],
)
def test_write_errors(tmp_path: Path, name: str, bits: int, fragment: str) -> None:
    with pytest.raises(DipscopeError, match=fragment):
        write_image(tmp_path / name, torch.zeros(3, 4, 4), bit_depth=bits)


def test_write_to_directory_fails(tmp_path: Path) -> None:
    target = tmp_path / "d.png"
    target.mkdir()
    with pytest.raises(DipscopeError, match="directory"):
        write_image(target, torch.zeros(1, 4, 4))


def test_conversions() -> None:
    image = torch.rand(3, 4, 5)
    assert to_numpy_hwc(image).shape == (4, 5, 3)
    assert to_numpy_hwc(image[:1]).shape == (4, 5, 1)
    assert to_numpy_hwc(np.zeros((4, 5))).shape == (4, 5, 1)
    assert to_uint8(image).shape == (4, 5, 3)
    assert to_uint8(image[:1]).shape == (4, 5)
    assert to_uint8(torch.tensor([[0.0, 1.0, 0.5, -1.0]])).tolist() == [[0, 255, 128, 0]]
    with pytest.raises(ValueError, match="H, W, C"):
        to_numpy_hwc(np.zeros((3, 16, 16)))


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("shape", [(1, 67, 93), (3, 67, 93), (2, 3, 67, 93)])
def test_pad_crop_round_trip(shape: tuple[int, ...]) -> None:
    image = torch.rand(shape)
    padded, padding = pad_to_multiple(image, 32)
    assert padded.shape[-2:] == (96, 96)
    assert padded.shape[:-2] == image.shape[:-2]
    assert padding == (1, 2, 14, 15)
    left, _, top, _ = padding
    # reflection: the pixel left of the original first column mirrors column 1
    torch.testing.assert_close(padded[..., top:top + 67, left - 1], image[..., :, 1])
    torch.testing.assert_close(padded[..., top - 1, left:left + 93], image[..., 1, :])
    torch.testing.assert_close(crop_padding(padded, padding), image)


def test_pad_falls_back_to_replicate() -> None:
    image = torch.rand(3, 5, 5)
    padded, padding = pad_to_multiple(image, 32)
    assert padded.shape == (3, 32, 32)
    assert padding == (13, 14, 13, 14)
    torch.testing.assert_close(padded[:, 0, 0], image[:, 0, 0])
    torch.testing.assert_close(padded[:, -1, -1], image[:, -1, -1])
    torch.testing.assert_close(crop_padding(padded, padding), image)


def test_pad_mixes_modes_per_axis() -> None:
    image = torch.rand(1, 30, 5)  # height reflects, width must replicate
    padded, padding = pad_to_multiple(image, 16)
    assert padded.shape == (1, 32, 16)
    left, _, top, _ = padding
    assert padding == (5, 6, 1, 1)
    torch.testing.assert_close(padded[0, top:top + 30, 0], image[0, :, 0])
    torch.testing.assert_close(padded[0, 0, left:left + 5], image[0, 1, :])


def test_pad_multiple_one_is_noop_and_crop_time_stack() -> None:
    image = torch.rand(3, 7, 9)
    padded, padding = pad_to_multiple(image, 1)
    assert padding == (0, 0, 0, 0) and padded.shape == image.shape
    stack = torch.rand(4, 3, 16, 16)  # (T, C, H, W)
    assert crop_padding(stack, (1, 2, 3, 4)).shape == (4, 3, 9, 13)
    with pytest.raises(ValueError):
        pad_to_multiple(image, 0)


def test_check_min_size() -> None:
    check_min_size(64, 64, 64, "the network")
    with pytest.raises(DipscopeError, match=r"40×41 px but a 6-level U-Net needs at least 64"):
        check_min_size(40, 41, 64, "a 6-level U-Net")
