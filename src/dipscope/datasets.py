"""Named test sets: file names and sha256, loaded from a local directory.

The directory is the ``data_dir`` argument, else the ``DIPSCOPE_DATA`` environment variable.
Every file is checked against its sha256 before use, so a table computed by dipscope is known
to come from the same pixels as the published one. :func:`fetch` (``dipscope data fetch``)
downloads a set from public URLs pinned to a commit, with the same checks; nothing in the
library or its tests downloads anything otherwise.

* ``cbm3d9`` — the 9 colour images of the CBM3D denoising set as used by the DIP papers
  (baboon, f16, house, kodim01, kodim02, kodim03, kodim12, lena, peppers);
* ``barbara`` — the grey 512×512 Barbara;
* ``triangle`` — the study's synthetic "triangle" images with fine-line patches covering
  a side fraction 0.2 … 1.0 (no licence: use them from a local copy, never redistribute);
  :func:`pattern_image` generates images of the same kind, free to use and commit.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import DipscopeError
from .images import read_image


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


ENV = "DIPSCOPE_DATA"


_SHI = "https://raw.githubusercontent.com/shizenglin/Measure-and-Control-Spectral-Bias/ed2d37185dc94a7cd78656d19fed28b29ba0b1b8/dataset/denoising/"
_DIP = "https://raw.githubusercontent.com/DmitryUlyanov/deep-image-prior/042e0d4c1e93f4b1eb0932781de55b8cff5e0f40/data/"
_STUDY = "https://raw.githubusercontent.com/PCJohn/dip-spectral/cb8538446586b1a7eb0da1e095ae4364424b4af0/data/triangle/"


@dataclass(frozen=True)
class Entry:
    """One image of a set: its name, file name, sha256 and a public URL (pinned commit)."""

    name: str
    file: str
    sha256: str
    url: str = ""


CBM3D9 = (
    Entry("baboon", "baboon.png", "3714ba077446c372241027cc672f4c32749f95089ffbc0188398e39246e1a440", _SHI + "image_Baboon512rgb.png"),
    Entry("f16", "f16.png", "33810cc97ab8222e5bbb5fb32394d314d7d53564b008a4bf5371d0044ca45336", _DIP + "denoising/F16_GT.png"),
    Entry("house", "house.png", "292578e2309791b54652350ca79a06b2c6fa2290121389719b3af69b041dc150", _SHI + "image_House256rgb.png"),
    Entry("kodim01", "kodim01.png", "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd", _SHI + "kodim01.png"),
    Entry("kodim02", "kodim02.png", "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd", _SHI + "kodim02.png"),
    Entry("kodim03", "kodim03.png", "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db", _SHI + "kodim03.png"),
    Entry("kodim12", "kodim12.png", "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980", _SHI + "kodim12.png"),
    Entry("lena", "lena.png", "ab0642b305fe54290a0db041b2c007e78bb94584e367520b98eec0799f45c975", _SHI + "image_Lena512rgb.png"),
    Entry("peppers", "peppers.png", "d7b926dff30cdbe2760f0f72d0850aac7d9b4bf2ad83a77370cef1e1ded52f9f", _SHI + "image_Peppers512rgb.png"),
)
BARBARA = (Entry("barbara", "barbara.png", "764b8a2748cc7ad381cccc047c5e512cb528c197ba86adb83aa339e8932e66c0", _DIP + "restoration/barbara.png"),)
TRIANGLE = tuple(
    Entry(f"triangle-{f}", f"triangle-{f}.png", h, _STUDY + f"triangle-{f}.png") for f, h in [
        ("0.2", "fb848b58ffd489c600de92337f7953fb47d5082f704e6d295575923d035683c4"),
        ("0.3", "6cf50e84bf2ea431157e1efa4f4ccef3f655eb6fcd71bd6bbc45238b62ced671"),
        ("0.4", "61fd25ba92e3878bd9d2da61705abc6f2bbb630d8731f2b79fe8ce864cdcae0e"),
        ("0.5", "c806c434219e1eca738c1ad4ede8791dc1277d29956230629d2213d6f3809b9d"),
        ("0.6", "e0f8e96cbdbce0b557ff31a4e31b4cd1fea6e921d13ae7d2746b09853483557c"),
        ("0.7", "b149f334ba5afcfddaa204898db21d92d68745842e0a048e0c9914a798018adb"),
        ("0.8", "8d50ab774c8114f5d2b8cee7bc8ca5a897753042adf516b0f47c8812ae0563d4"),
        ("0.9", "161078f213a61dd4ba828a3abe00c3501b865ac056884962c6a1293d363c6b5c"),
        ("1.0", "91a3eefdc7f7e0c458c3d4fcd24af19d1342f7e72fe570520cb848093903c811"),
    ]
)
SETS: dict[str, tuple[Entry, ...]] = {"cbm3d9": CBM3D9, "barbara": BARBARA, "triangle": TRIANGLE}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit``, else ``$DIPSCOPE_DATA``; it must exist."""
    value = explicit if explicit is not None else os.environ.get(ENV)
    if not value:
        raise DipscopeError(f"no data directory: pass --data-dir or set {ENV} to the folder holding the images")
    path = Path(value)
    if not path.is_dir():
        raise DipscopeError(f"data directory {path} does not exist")
    return path


def entries(name: str) -> tuple[Entry, ...]:
    if name not in SETS:
        raise DipscopeError(f"unknown data set {name!r}; choose one of {', '.join(SETS)}")
    return SETS[name]


def load(name: str, directory: str | os.PathLike | None = None, verify: bool = True) -> dict[str, torch.Tensor]:
    """Images of set ``name`` as (C, H, W) tensors, keyed by image name, checked by sha256."""
    root = data_dir(directory)
    out: dict[str, torch.Tensor] = {}
    for e in entries(name):
        path = root / e.file
        if not path.is_file():
            raise DipscopeError(f"{e.file} of data set {name} is missing from {root}")
        if verify and sha256_file(path) != e.sha256:
            raise DipscopeError(f"{path} does not match the sha256 of {name}/{e.name}: a different file")
        out[e.name] = read_image(path)
    return out


def _download(url: str, path: Path, timeout: float = 60.0) -> None:
    """Write the bytes at ``url`` to ``path`` (the network is used here only)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as f:  # noqa: S310 (pinned https URLs)
        while chunk := response.read(1 << 16):
            f.write(chunk)


def fetch(name: str, directory: str | os.PathLike, download: Callable[[str, Path], None] = _download,
          progress: Callable[[str], None] = print) -> list[Path]:
    """Download set ``name`` into ``directory`` from its pinned public URLs, checking sha256.

    Files already there with the right sha256 are kept; a file with the same name but other
    content is never overwritten (an error says so). Each download goes to a temporary name
    and is renamed only after its sha256 matches, so an interrupted fetch leaves no bad file.
    """
    root = Path(directory)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DipscopeError(f"cannot fetch {name} into {root}: it is a file, not a folder") from None
    except OSError as e:
        raise DipscopeError(f"cannot fetch {name} into {root}: {e.strerror or e}") from None
    written: list[Path] = []
    for e in entries(name):
        path = root / e.file
        if path.exists():
            if sha256_file(path) != e.sha256:
                raise DipscopeError(f"{path} exists with other content than {name}/{e.name}; "
                                    "move it away to fetch the set")
            progress(f"{e.file}: present, sha256 ok")
            continue
        tmp = path.with_name(f".{e.file}.part")
        try:
            download(e.url, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DipscopeError(f"could not download {e.url}: {exc}") from None
        digest = sha256_file(tmp)
        if digest != e.sha256:
            tmp.unlink(missing_ok=True)
            raise DipscopeError(f"{e.url} has sha256 {digest[:12]}…, expected {e.sha256[:12]}…; not saved")
        tmp.replace(path)
        written.append(path)
        progress(f"{e.file}: downloaded, sha256 ok")
    return written


def pattern_image(size: int = 256, fraction: float = 0.5, stripe_period: int = 24, stripe_width: int = 8,
                  stripe_level: float = 0.55, triangle_level: float = 0.35, line_gain: float = 2 / 3) -> torch.Tensor:
    """A synthetic test image with a controllable amount of high-frequency pattern, (1, size, size).

    After the study's "triangle" images: a white background with grey diagonal stripes
    (period ``stripe_period`` px along each axis), a dark triangle in the centre, and in the
    top-left ``fraction·size × fraction·size`` square a pattern of fine horizontal lines —
    every other row darkened by ``line_gain`` — i.e. energy at the vertical Nyquist frequency
    0.5 cycles/pixel. ``fraction`` is the side fraction (the covered area is ``fraction²``), as
    in the study's file names ``triangle-{fraction}.png``. Never downsample these images: the
    lines exist only on the full pixel grid.
    """
    if not 0.0 <= fraction <= 1.0:
        raise DipscopeError("the pattern fraction must be in [0, 1]")
    if size < 16:
        raise DipscopeError("pattern images need size ≥ 16")
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.ones(size, size)
    image[((x + y) % stripe_period) < stripe_width] = stripe_level
    top, bottom = 0.35 * size, 0.6 * size
    half_width = (y - top) / (bottom - top) * 0.1 * size
    inside = (y >= top) & (y <= bottom) & ((x - size / 2).abs() <= half_width)
    image[inside] = triangle_level
    n = int(round(fraction * size))
    if n > 0:
        rows = (torch.arange(size) % 2 == 0)[:, None] & (y < n) & (x < n)
        image = torch.where(rows, image * line_gain, image)
    return image[None]
