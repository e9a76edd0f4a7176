"""The page every report shares: one HTML document with its style, images as ``data:`` URIs,
and a check that records the page's own errors.

Nothing in a page refers to another file or to the network: images are base64 ``data:`` URIs,
the style sheet and the script are inline. The script writes every error the page raises
(a script error, an image that does not decode) into the hidden ``<pre id="page-errors">``
once the page has loaded and sets its ``data-checked`` attribute, so a headless browser's
``--dump-dom`` shows whether the page displayed cleanly.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

#: The ``<meta name="generator">`` of every report: marks a ``report.html`` as ours (and replaceable).
GENERATOR = "dipscope report"

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
         ".gif": "image/gif"}
#: Image files a report shows inline, by suffix.
IMAGE_SUFFIXES = tuple(_MIME)

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232b; background: #fff;
       margin: 0 auto; padding: 1.2em 2em 3em; max-width: 1180px; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.1em; } h2 { font-size: 1.25em; margin-top: 1.8em;
     border-bottom: 1px solid #d7dce2; padding-bottom: 0.2em; }
.lead { color: #4a5563; margin-top: 0; }
.status { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.8em; font-size: 0.85em; }
.status.complete { background: #dff3e4; color: #1b5e2c; } .status.interrupted { background: #fde7d2; color: #7a3a00; }
.row { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure { margin: 0; } figure.image img { width: 300px; image-rendering: pixelated; border: 1px solid #ccd2d9; }
figure.small img { width: 180px; }
figure.plot img { max-width: 100%; }
figcaption { font-size: 0.88em; color: #3b4450; max-width: 300px; margin-top: 0.3em; }
figure.plot figcaption { max-width: none; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #d7dce2; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { font: 0.85em/1.4 ui-monospace, "SFMono-Regular", Menlo, monospace; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; }
details { margin: 0.8em 0; } summary { cursor: pointer; color: #2f5d8a; }
.note { color: #5b6573; font-size: 0.9em; }
.markdown img { max-width: 100%; } .markdown h1 { font-size: 1.3em; } .markdown h2 { font-size: 1.12em; }
.markdown h3 { font-size: 1em; }
"""

_CHECK = """
window.pageErrors = [];
window.addEventListener("error", function (e) {
  var what = e.message || ((e.target && e.target.tagName) ? e.target.tagName + " failed to load" : "error");
  window.pageErrors.push(what);
}, true);
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { window.pageErrors.push("image did not decode: " + img.alt); }
  });
  var log = document.getElementById("page-errors");
  log.textContent = window.pageErrors.join("\\n");
  log.setAttribute("data-checked", "yes");
});
"""


def page(title: str, body: Sequence[str]) -> str:
    """The whole document: ``title`` (plain text) and the ``body`` fragments (HTML) in order."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{_STYLE}</style>", f"<script>{_CHECK}</script>", "</head>",
        "<body>", *body, '<pre id="page-errors" hidden></pre>', "</body>", "</html>", ""])


def esc(value: object) -> str:
    """``value`` as text safe inside HTML (and inside quoted attributes)."""
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, suffix: str = ".png") -> str:
    """``data`` (the bytes of an image file of type ``suffix``) as a ``data:`` URI."""
    return f"data:{_MIME[suffix.lower()]};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str:
    """The image file ``path`` as a ``data:`` URI."""
    return data_uri(path.read_bytes(), path.suffix)


def array_uri(image: torch.Tensor | np.ndarray) -> str:
    """An image in ``[0, 1]`` (``(C, H, W)`` tensor or ``(H, W[, C])`` array) as an 8-bit PNG ``data:`` URI."""
    import imageio.v3 as iio

    from ..images import to_uint8

    return data_uri(iio.imwrite("<bytes>", to_uint8(image), extension=".png"))


def figure(uri: str, caption: str, kind: str = "image", alt: str | None = None) -> str:
    """One image (a ``data:`` URI) with its caption (plain text); ``kind``: image, small or plot."""
    classes = "image small" if kind == "small" else kind
    return (f'<figure class="{classes}"><img src="{uri}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: bool = True) -> str:
    """An HTML table of plain-text cells; numbers are right-aligned unless ``numeric`` is False."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) if numeric else f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or _is_number(value)
    return f'<td class="num">{esc(value)}</td>' if numeric else f"<td>{esc(value)}</td>"


def _is_number(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def csv_table(path: Path, max_rows: int = 200) -> str:
    """The CSV file ``path`` as an HTML table (at most ``max_rows`` rows, then a note of how many more)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return f'<p class="note">{esc(path.name)} is empty.</p>'
    header, body = rows[0], rows[1:]
    more = len(body) - max_rows
    note = f'<p class="note">… and {more} more rows in {esc(path.name)}.</p>' if more > 0 else ""
    return table(header, body[:max_rows]) + note


def fmt(value: object, digits: int = 2) -> str:
    """A value for a table: floats to ``digits`` decimals, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def plot_png(fig: object) -> str:
    """A matplotlib ``Figure`` rendered by the Agg canvas (no pyplot, no global backend) as a PNG ``data:`` URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)  # type: ignore[arg-type]
    return data_uri(buffer.getvalue())
