"""report.html: written with every denoise/restore run, rebuilt by ``dipscope report DIR`` for a
run or an experiment's folder; self-contained (every image inline, nothing from the network)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from dipscope.images import write_image
from dipscope.report import add_run_report, folder_report_html, run_report_html
from dipscope.report.figures import fit_curves
from dipscope.report.run import run_choices


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, textured_grey: torch.Tensor) -> Path:
    """One finished ``dipscope denoise`` run: two seeds averaged, the per-band error recorded."""
    from dipscope.cli import main

    folder = tmp_path_factory.mktemp("report")
    image = folder / "camera.png"
    write_image(image, textured_grey)
    out = folder / "run"
    try:
        main(["denoise", str(image), "--out", str(out), "--steps", "10", "--levels", "3", "--runs", "2",
              "--spectra", "--device", "cpu"])
    except SystemExit as e:
        assert not e.code, f"dipscope denoise exited {e.code}"
    return out


class Page(HTMLParser):
    """The parts of a report a reader sees: image sources, section titles, tables as rows of cell text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        elif tag == "h2":
            self._heading = []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        for part in (self._heading, self._cell):
            if part is not None:
                part.append(data)

    def table_headed(self, first: str) -> list[list[str]]:
        return next(t for t in self.tables if t and t[0] and t[0][0] == first)


def _decoded(src: str) -> bytes:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return base64.b64decode(src.split(",", 1)[1])


def test_denoise_writes_a_self_contained_report(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    assert '<meta name="generator" content="dipscope report">' in text
    assert not re.search(r"https?://", text), "a report refers to nothing on the network"
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text), "a report refers to no other file"
    page = Page(text)
    assert all(img["src"].startswith("data:image/") for img in page.images)
    by_alt = {img["alt"]: img["src"] for img in page.images}
    # the measurement and the result are the run's very files, the clean image the input itself
    assert _decoded(by_alt["measurement"]) == (run_dir / "noisy.png").read_bytes()
    assert _decoded(by_alt["result"]) == (run_dir / "denoised.png").read_bytes()
    import imageio.v3 as iio

    clean = iio.imread(_decoded(by_alt["clean"]))
    assert np.array_equal(clean, iio.imread(run_dir.parent / "camera.png"))
    for name in ("final.png", "ema.png", "best.png", "denoised-run-0.png", "denoised-run-1.png"):
        assert _decoded(by_alt[name]) == (run_dir / name).read_bytes(), name


def test_report_lists_each_runs_choice(run_dir: Path) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    rows = Page((run_dir / "report.html").read_text()).table_headed("run")
    choices = run_choices(record)
    assert len(choices) == 2 and len(rows) == 1 + len(choices)
    for k, ((seed, choice), row) in enumerate(zip(choices, rows[1:])):
        assert row[:4] == [str(k), str(seed), choice["rule"] or "none", str(choice["step"])]
        assert row[-1] == choice["reason"]
    assert [seed for seed, _ in choices] == record["stopping"]["seeds"] == [0, 1]


def test_report_marks_the_stop_step_and_shows_the_spectra(run_dir: Path) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    text = (run_dir / "report.html").read_text()
    page = Page(text)
    assert "Loss and PSNR" in page.headings and "Per-band error against the clean image" in page.headings
    step = record["stopping"]["runs"][0]["step"]
    assert f"the dashed line marks step {step}" in text
    # without spectral.csv the section goes, the rest stays
    bare = run_dir.parent / "bare"
    shutil.copytree(run_dir, bare)
    (bare / "spectral.csv").unlink()
    headings = Page(run_report_html(bare, record)).headings
    assert "Per-band error against the clean image" not in headings and "Loss and PSNR" in headings


def _stop_mask(uri: str) -> np.ndarray:
    """The pixels of a plot in the stop mark's colour (#c0392b, or its anti-aliased edge)."""
    import imageio.v3 as iio

    rgb = iio.imread(_decoded(uri))[..., :3].astype(int)
    return np.abs(rgb - [0xC0, 0x39, 0x2B]).sum(axis=-1) < 90


def test_the_stop_step_is_drawn_where_it_was_chosen() -> None:
    steps = list(range(50))
    losses = list(np.geomspace(1, 1e-2, 50))
    psnr = {"output": ([0, 10, 20, 30, 40, 49], [10.0, 20, 24, 25, 24, 23])}
    assert not _stop_mask(fit_curves(steps, losses, psnr, None, "")).any()
    at_30, at_45 = (_stop_mask(fit_curves(steps, losses, psnr, s, f"chosen step {s}")) for s in (30, 45))
    assert at_30.sum() > 200  # a dashed line across each panel
    line_30, line_45 = (np.nonzero(mask.sum(axis=0) > 20)[0] for mask in (at_30, at_45))
    assert len(line_30) and len(line_45) and line_45.mean() > line_30.mean()  # the line moves with the step


def test_a_report_that_fails_never_costs_the_run(tmp_path: Path) -> None:
    (tmp_path / "denoised.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="report.html was not written"):
        assert add_run_report(tmp_path, {"task": "denoise"}) is None
    assert not (tmp_path / "report.html").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["denoised.png"]


def test_dipscope_report_rebuilds_a_run(run_dir: Path, tmp_path: Path, cli) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    code, out, err = cli(["report", str(copy)])
    assert code == 0, err
    assert f"wrote {copy / 'report.html'}" in out
    rebuilt = Page((copy / "report.html").read_text())
    assert {"measurement", "result", "clean"} <= {img["alt"] for img in rebuilt.images}
    assert rebuilt.table_headed("run") == Page((run_dir / "report.html").read_text()).table_headed("run")


def test_folder_report_shows_verdict_tables_and_figures(tmp_path: Path, cli) -> None:
    write_image(tmp_path / "bands.png", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    write_image(tmp_path / "grid.png", np.ones((16, 16), np.float32))
    (tmp_path / "README.md").write_text(
        "# Bias\n\nVerdict: **supported** <script>alert(1)</script>\n\n![the bands](bands.png)\n\n"
        "![elsewhere](https://example.org/x.png)\n")
    (tmp_path / "summary.md").write_text("| model | ρ |\n|---|---|\n| dip | 0.99 |\n")
    (tmp_path / "summary.csv").write_text("model,rho\ndip,0.99\nrelunet,0.64\n")
    code, _, err = cli(["report", str(tmp_path)])
    assert code == 0, err
    text = (tmp_path / "report.html").read_text()
    assert "<strong>supported</strong>" in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text and "[image: elsewhere]" in text
    assert not re.search(r"""src=["']https?:""", text)
    page = Page(text)
    assert [["model", "ρ"], ["dip", "0.99"]] in page.tables  # summary.md
    assert [["model", "rho"], ["dip", "0.99"], ["relunet", "0.64"]] in page.tables  # summary.csv
    sources = {img["alt"]: img["src"] for img in page.images}
    assert _decoded(sources["the bands"]) == (tmp_path / "bands.png").read_bytes()
    assert _decoded(sources["grid.png"]) == (tmp_path / "grid.png").read_bytes()
    assert "bands.png" not in sources, "a figure the verdict shows is not shown twice"
    assert folder_report_html(tmp_path).count("data:image/png") == 2


def _one_error_line(code: int, err: str, fragment: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err


def test_report_bad_input(tmp_path: Path, cli) -> None:
    code, _, err = cli(["report", str(tmp_path / "missing")])
    _one_error_line(code, err, "does not exist")
    (tmp_path / "file.txt").write_text("x")
    code, _, err = cli(["report", str(tmp_path / "file.txt")])
    _one_error_line(code, err, "is not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(["report", str(empty)])
    _one_error_line(code, err, "nothing to report")
    assert not (empty / "report.html").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("# mine\n")
    (foreign / "report.html").write_text("<html>my own page</html>")
    code, _, err = cli(["report", str(foreign)])
    _one_error_line(code, err, "not written by dipscope")
    assert (foreign / "report.html").read_text() == "<html>my own page</html>"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "run.json").write_text('{"versions": {}}')
    code, _, err = cli(["report", str(stranger)])
    _one_error_line(code, err, "not the record of a finished dipscope run")


# --- in a browser ------------------------------------------------------------------------------

def _chromium() -> str | None:
    import os

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("DIPSCOPE_REQUIRE_BROWSER"):
        pytest.fail("DIPSCOPE_REQUIRE_BROWSER is set but no chromium is installed")
    return found


def _headless(browser: str, profile: Path, page: Path, *args: str) -> tuple[str, str]:
    """Run headless Chromium on ``page`` (network off); return its stdout and its console messages."""
    import subprocess

    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=1000", *args, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, "\n".join(line for line in done.stderr.splitlines() if ":CONSOLE" in line)


def _page_errors(dom: str) -> tuple[bool, str]:
    """Whether the page's own check ran, and the errors it recorded."""
    found = re.search(r'<pre id="page-errors"([^>]*)>(.*?)</pre>', dom, re.S)
    assert found, "the page's error log is missing"
    return 'data-checked="yes"' in found.group(1), found.group(2).strip()


def test_report_displays_in_a_browser(run_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium here (CI installs it: .ci/run)")
    import imageio.v3 as iio

    report = run_dir / "report.html"
    shot = tmp_path / "report.png"
    dom, console = _headless(browser, tmp_path / "profile", report, "--window-size=1280,2400",
                             f"--screenshot={shot}", "--dump-dom")
    assert console == "", console
    checked, errors = _page_errors(dom)
    assert checked and errors == "", errors
    pixels = iio.imread(shot)[..., :3].astype(np.int32)
    assert pixels.shape[:2] == (2400, 1280)
    colours = np.unique((pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2])
    assert len(colours) > 1000, "the screenshot shows the images and plots, not a blank page"
    # the check can fail: a page whose image does not decode records it
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src="data:image/png;base64,AAAA"',
                             report.read_text(), count=1))
    checked, errors = _page_errors(_headless(browser, tmp_path / "profile", broken, "--dump-dom")[0])
    assert checked and "image did not decode: measurement" in errors
