"""Check every guarantee of ``docs/reliability.md`` against the installed ``dipscope`` and print a
Markdown table: guarantee, command, exit status, message, what is on disk after, and whether it
held. The last line counts the guarantees that held.

Usage: ``python benchmarks/reliability.py [GROUP ...]`` (groups: signals, force, sweeps, inputs,
api, paths; default all). Everything happens in a temporary directory, on a 64×64 crop of
scikit-image's ``astronaut`` (``I``), with one torch thread; the whole run takes a few minutes on
2 CPU cores. A disk-full case needs a small tmpfs, made where this process may mount one (root),
else shown as skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
DIPSCOPE = [sys.executable, "-m", "dipscope.cli"]
SMALL = ["--levels", "3", "--device", "cpu"]
TABLE = ["experiment", "denoise-table", "--models", "dip", "--runs", "1", "--profile", "smoke", "--factor", "1",
         "--device", "cpu"]


def run(*args: str, timeout: float = 600) -> tuple[int, str, str]:
    try:
        p = subprocess.run([*DIPSCOPE, *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", "error: TIMED OUT (the command hung)"
    return p.returncode, p.stdout, p.stderr


def python(code: str) -> tuple[int, str, str]:
    """Run a Python snippet (with dipscope importable) in a fresh process."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600)
    return p.returncode, p.stdout, p.stderr


def start(*args: str) -> subprocess.Popen[str]:
    """Start a command; return once it prints its ``fitting`` line."""
    p = subprocess.Popen([*DIPSCOPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert p.stderr is not None
    p.seen = []  # type: ignore[attr-defined]
    for line in p.stderr:
        p.seen.append(line)  # type: ignore[attr-defined]
        if line.startswith("fitting"):
            break
    return p


def interrupt(signum: int, *args: str, wait_for_fit: bool = True, after: float = 1.0) -> tuple[int, str, str, float]:
    """Start a long command, send ``signum`` ``after`` seconds after its fit starts (or 10 s after
    the process starts when it prints no ``fitting`` line); return (status, stdout, stderr,
    seconds from the signal to the exit)."""
    if wait_for_fit:
        p = start(*args)
        time.sleep(after)
    else:
        p = subprocess.Popen([*DIPSCOPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        p.seen = []  # type: ignore[attr-defined]
        time.sleep(10.0)
    p.send_signal(signum)
    t0 = time.perf_counter()
    out, err = p.communicate()
    return p.returncode, out, "".join(p.seen) + err, time.perf_counter() - t0  # type: ignore[attr-defined]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:12]


def message(err: str) -> str:
    lines = [line.strip() for line in err.splitlines()
             if line.strip().startswith(("error:", "interrupted", "aborted", "Traceback", "SIGTERM", "SIGINT"))]
    return lines[-1] if lines else "–"


def one_error(code: int, err: str, status: int = 2) -> bool:
    """One ``error:`` line, no traceback, exit ``status``."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("fitting", "outputs", "skip"))
             and "━" not in line]
    return code == status and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err


def status(path: Path) -> str:
    try:
        record = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        return "no readable run.json"
    return record.get("status") or ("finished" if "summary" in record else "unknown")


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


Row = tuple[str, str, int, str, str, bool | None]


class Battery:
    """The rows of the table, one per guarantee checked."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, guarantee: str, command: str, code: int, err: str, disk: str, held: bool | None) -> None:
        self.rows.append((guarantee, command, code, message(err), disk, held))
        mark = {True: "held", False: "NOT HELD", None: "skipped"}[held]
        print(f"[{mark}] {guarantee}: {command}", file=sys.stderr, flush=True)

    def table(self) -> str:
        lines = ["| guarantee | command | exit | message | on disk after | held |", "|---|---|---|---|---|---|"]
        for guarantee, command, code, msg, disk, held in self.rows:
            mark = {True: "yes", False: "**NO**", None: "skipped"}[held]
            lines.append(f"| {guarantee} | {command} | {code} | {msg.replace('|', '/')} | {disk} | {mark} |")
        checked = [r for r in self.rows if r[5] is not None]
        lines.append("")
        lines.append(f"{sum(bool(r[5]) for r in checked)} of {len(checked)} guarantees held"
                     + (f" ({len(self.rows) - len(checked)} skipped)" if len(checked) < len(self.rows) else "") + ".")
        return "\n".join(lines)


# --- the groups ------------------------------------------------------------------------------

def signals(b: Battery) -> None:
    run("denoise", "I.png", "--out", "R", "--steps", "5", *SMALL)
    Path("R/notes.txt").write_text("mine")
    before = digest(Path("R"))
    code, out, err, _ = interrupt(signal.SIGINT, "denoise", "I.png", "--out", "R", "--steps", "2000", "--force", *SMALL)
    beside = sorted(Path(".").glob("R.interrupted-*"))
    b.add("signal, finished run kept", "`denoise I --out R --steps 2000 --force` (R a finished run), SIGINT", code, err,
          f"R {'unchanged' if digest(Path('R')) == before else 'CHANGED'} (with notes.txt); "
          f"{beside[0].name if beside else 'nothing'} beside it: status {status(beside[0]) if beside else '–'}",
          code == 130 and digest(Path("R")) == before and bool(beside) and status(beside[0]) == "interrupted")

    code, _, err, _ = interrupt(signal.SIGTERM, "denoise", "I.png", "--out", "T", "--steps", "2000", *SMALL)
    b.add("signal, outputs kept", "`denoise I --out T --steps 2000`, SIGTERM", code, err,
          f"T: status {status(Path('T'))}, {len(list(Path('T').glob('*.png')))} PNGs",
          code == 143 and status(Path("T")) == "interrupted")

    code, _, err, secs = interrupt(signal.SIGTERM, "denoise", "I.png", "--out", "N", "--steps", "5", "--runs", "1000",
                                   *SMALL, after=3.0)
    record = json.loads(Path("N/run.json").read_text()) if Path("N/run.json").is_file() else {}
    averaged = record.get("stopping", {}).get("runs_averaged")
    b.add("no signal swallowed", "`denoise I --steps 5 --runs 1000`, SIGTERM 3 s into the fits", code, err,
          f"N: status {status(Path('N'))}, {averaged} finished runs averaged; exit {secs:.1f} s after the signal",
          code == 143 and status(Path("N")) == "interrupted" and bool(averaged) and secs < 10)

    code, _, err = python(SIGNAL_AT_END)
    b.add("no signal swallowed", "API: `restore(…, runs=3)`, a callback sends SIGINT in run 0's `on_end` "
          "(while it is saved)", code, err, out_of(code, err), code == 0 and "held" in err)

    code, _, err = python(SIGNAL_WHILE_BUILDING)
    b.add("finished runs kept", "API: `restore(…, runs=3)`, SIGTERM while run 1 is built", code, err,
          out_of(code, err), code == 0 and "held" in err)

    code, _, err, _ = interrupt(signal.SIGTERM, *TABLE, "I.png", "--steps", "dip=100000", "--out", "Y",
                                wait_for_fit=False)
    left = sorted(p.name for p in Path("Y/dip/I").iterdir()) if Path("Y/dip/I").exists() else []
    b.add("signal, sweep", "`experiment denoise-table I --steps dip=100000 … --out Y`, SIGTERM after 10 s", code, err,
          f"Y/dip/I: {left} (no half-written run)", code == 143 and not left)

    run("denoise", "I.png", "--out", "F", "--steps", "5", "--runs", "1", *SMALL)
    procs = [start("denoise", "I.png", "--out", "F", "--steps", "100000", "--runs", "1", "--force", *SMALL)
             for _ in range(2)]
    time.sleep(1.0)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    errs = "".join(p.communicate()[1] for p in procs)  # read their pipes: a full one would block the process
    codes = [p.returncode for p in procs]
    kept = sorted(p.name for p in Path(".").glob("F.interrupted-*"))
    b.add("signal, concurrent --force", "two `denoise I --out F --force` on one finished run, both SIGTERMed at once",
          codes[1], errs, f"exits {codes}; beside F: {kept}", codes == [143, 143] and len(kept) == 2)

    code, _, err = python(CTRL_C_AT_IMPORT)
    b.add("signal, at start-up", "Ctrl-C while torch is imported", code, err,
          "Traceback printed" if "Traceback" in err else "no traceback", code == 130 and "Traceback" not in err)


SIGNAL_AT_END = """
import os, signal, torch
from dipscope import Callback, interrupts
from dipscope.cli.request import RestoreRequest, run as run_request
torch.set_num_threads(1)
class SignalAtEnd(Callback):
    def on_end(self, state):
        if state.seed == 0:
            os.kill(os.getpid(), signal.SIGINT)
previous = interrupts.install()
run = run_request(RestoreRequest(image='I.png', out='E1', steps=5, levels=3, device='cpu', runs=3),
                  callbacks=[SignalAtEnd()]).restoration
ok = len(run.results) == 1 and run.stopping['interrupted']
print(f"{len(run.results)} of 3 runs fitted, status {'interrupted' if run.stopping['interrupted'] else 'complete'}: "
      f"{'held' if ok else 'NOT HELD'}", file=__import__('sys').stderr)
"""

SIGNAL_WHILE_BUILDING = """
import os, signal, time, torch
from dipscope import interrupts
from dipscope.cli.request import RestoreRequest, run as run_request
from dipscope.fit import loop
torch.set_num_threads(1)
real, calls = loop.check_inputs, []
def check_and_signal(*a, **k):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    return real(*a, **k)
loop.check_inputs = check_and_signal
previous = interrupts.install()
run = run_request(RestoreRequest(image='I.png', out='E2', steps=5, levels=3, device='cpu', runs=3)).restoration
ok = len(run.results) == 1 and run.stopping['interrupted']
print(f"E2 written, {len(run.results)} finished run kept: {'held' if ok else 'NOT HELD'}", file=__import__('sys').stderr)
"""

CTRL_C_AT_IMPORT = """
import os, runpy, signal, sys
class CtrlCAtTorch:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch':
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, CtrlCAtTorch())
sys.argv = ['dipscope', 'denoise', 'I.png', '--out', 'C']
runpy.run_module('dipscope.cli', run_name='__main__')
"""


def out_of(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {code}"


def force(b: Battery) -> None:
    Path("P").mkdir()
    Path("P/holiday.jpg").write_bytes(b"x")
    code, _, err = run("denoise", "I.png", "--out", "P", "--force", *SMALL)
    b.add("--force, other folders", "`denoise I --out P --force` (P a folder of other files)", code, err,
          f"P/holiday.jpg {'kept' if Path('P/holiday.jpg').exists() else 'LOST'}",
          one_error(code, err) and Path("P/holiday.jpg").exists())

    run("denoise", "I.png", "--out", "run1", "--steps", "2", "--runs", "1", *SMALL)
    shutil.copy("I.png", "run1/photo.png")
    code, _, err = run("denoise", "run1/photo.png", "--out", "run1", "--force", "--steps", "2", *SMALL)
    b.add("--force, inputs", "`denoise run1/photo.png --out run1 --force` (run1 a finished run)", code, err,
          f"run1/photo.png {'kept' if Path('run1/photo.png').exists() else 'LOST'}",
          one_error(code, err) and Path("run1/photo.png").exists())

    code, _, err = run("denoise", "I.png", "--out", ".", "--force", *SMALL)
    b.add("--force, working directory", "`denoise I --out . --force`", code, err, "nothing written", one_error(code, err))

    os.symlink("run1", "lnk")
    code, _, err = run("denoise", "I.png", "--out", "lnk", "--force", "--steps", "2", "--runs", "1", *SMALL)
    litter = [p.name for p in Path(".").glob(".*") if ".old-" in p.name]
    b.add("--force, links", "`denoise I --out lnk --force` (lnk → run1, a finished run)", code, err,
          f"lnk {'still a link' if Path('lnk').is_symlink() else 'REPLACED'}; run1 {status(Path('run1'))}; "
          f"leftovers: {litter or 'none'}", code == 0 and Path("lnk").is_symlink() and not litter)

    long = "r" * 236
    run("denoise", "I.png", "--out", long, "--steps", "2", "--runs", "1", *SMALL)
    code, _, err, _ = interrupt(signal.SIGINT, "denoise", "I.png", "--out", long, "--steps", "100000", "--runs", "1",
                                "--force", *SMALL)
    beside = [p for p in Path(".").iterdir() if p.name.startswith("r" * 100) and p.name != long]
    b.add("--force, long names", "`denoise I --out r…r` (236 characters) `--force`, SIGINT", code, err,
          f"{len(beside)} interrupted run beside it ({len(beside[0].name) if beside else 0} characters)",
          code == 130 and len(beside) == 1 and status(beside[0]) == "interrupted")


def sweeps(b: Battery) -> None:
    run(*TABLE, "I.png", "--out", "X")
    before = digest(Path("X"))
    code, _, err = run(*TABLE, "I.png", "--out", "X", "--sigma", "15")
    b.add("sweep, other settings", "`experiment denoise-table I … --out X` again with `--sigma 15`", code, err,
          f"X {'unchanged' if digest(Path('X')) == before else 'CHANGED'}",
          one_error(code, err) and digest(Path("X")) == before)

    from dipscope.images import read_image, write_image

    Path("A").mkdir()
    shutil.copy("I.png", "A/I.png")
    write_image("A/I.png", read_image("I.png").flip(-1))  # same name and size, other pixels
    before = digest(Path("X"))
    code, _, err = run(*TABLE, "A/I.png", "--out", "X")
    b.add("sweep, one image", "the same sweep on another image of the same name and size", code, err,
          f"X {'unchanged' if digest(Path('X')) == before else 'CHANGED'}",
          one_error(code, err) and digest(Path("X")) == before)

    Path("U").mkdir()
    Path("U/table.md").write_text("mine")
    Path("U/.dipscope-sweep").touch()
    code, _, err = run(*TABLE, "I.png", "--out", "U")
    b.add("sweep, marks", "`… --out U` (U holds table.md and an empty `.dipscope-sweep`)", code, err,
          f"U/table.md {'kept' if Path('U/table.md').read_text() == 'mine' else 'OVERWRITTEN'}",
          one_error(code, err) and Path("U/table.md").read_text() == "mine")

    stale = Path("X/dip/I/.run-0.partial-killed")
    shutil.rmtree("X/dip/I/run-0")
    stale.mkdir()
    (stale / ".writing.lock").write_text("")
    os.utime(stale, (time.time() - 3600,) * 2)  # left an hour ago by a killed process
    code, _, err = run(*TABLE, "I.png", "--out", "X")
    b.add("sweep, killed writers", "resume X after a killed run left `.run-0.partial-*`", code, err,
          f"partial {'removed' if not stale.exists() else 'LEFT'}; run-0 {status(Path('X/dip/I/run-0'))}",
          code == 0 and not stale.exists())

    Path("X/dip/I/run-0/run.json").write_text('{"task": "dip/I/run-0", "summ')
    code, _, err = run(*TABLE, "I.png", "--out", "X")
    aside = sorted(Path("X/dip/I").glob("run-0.unfinished-*"))
    b.add("sweep, truncated records", "resume X with a truncated `run-0/run.json`", code, err,
          f"{aside[0].name if aside else 'nothing'} set aside; run-0 {status(Path('X/dip/I/run-0'))}",
          code == 0 and bool(aside))

    code, _, err = run(*TABLE, "I.png", "--out", "X", "--threads", "2")
    b.add("sweep, thread count", "resume X (made with 1 thread) with `--threads 2`", code, err, "X unchanged",
          one_error(code, err))

    from skimage import data

    write_image("s16.png", data.astronaut()[100:116, 200:216].astype("float32") / 255.0)
    for experiment in ("bias", "lowfreq-noise"):
        code, _, err = run("experiment", experiment, "s16.png", "--profile", "smoke", "--device", "cpu", "--out",
                           f"small-{experiment}")
        b.add("sweep, checked first", f"`experiment {experiment} s16.png` (16×16)", code, err,
              "nothing written" if not Path(f"small-{experiment}").exists() else "FOLDER MADE",
              one_error(code, err) and not Path(f"small-{experiment}").exists())


def inputs(b: Battery) -> None:
    for args in (["--sigma", "nan"], ["--lr", "inf"], ["--seed", "-1"], ["--width", "0"], ["--levels", "99"],
                 ["--out", "/proc/x"], ["--task", "inpaint", "--drop", "0.9999"]):
        command = "restore" if "--task" in args else "denoise"
        full = [command, "I.png", *(["--out", "O"] if "--out" not in args else []), "--steps", "2000",
                "--device", "cpu", *args]
        t0 = time.perf_counter()
        code, _, err = run(*full)
        fitted = "a fit STARTED" if "fitting" in err else "no fit started"
        b.add("bad input", f"`{command} I {' '.join(args)}`", code, err,
              f"{'nothing written' if not Path('O').exists() else 'O created'}; {fitted}; "
              f"{time.perf_counter() - t0:.1f} s in all", one_error(code, err) and not Path("O").exists())

    Path("huge.png").write_bytes(png_header(100_000, 100_000))
    code, _, err = run("denoise", "huge.png", "--out", "H")
    b.add("bad input", "`denoise huge.png` (header claims 100000×100000)", code, err, "nothing written",
          one_error(code, err))

    os.mkfifo("fifo.png")
    code, _, err = run("denoise", "fifo.png", "--out", "O", timeout=120)
    b.add("bad input", "`denoise fifo.png` (a FIFO)", code, err, "nothing written", one_error(code, err))

    from dipscope.images import read_image, write_image

    write_image("grey.png", read_image("I.png").mean(dim=0, keepdim=True))
    code, _, err = run("denoise", "I.png", "--noisy", "--clean", "grey.png", "--out", "O", *SMALL)
    b.add("messages", "`denoise I --noisy --clean grey.png`", code, err, "nothing written",
          one_error(code, err) and "grey" in err and "RGB" in err)

    import torch

    mask = torch.zeros(1, 64, 64)
    mask[:, ::2] = 1 / 255
    write_image("mask01.png", mask)
    code, _, err = run("restore", "I.png", "--task", "inpaint", "--mask", "mask01.png", "--out", "O", *SMALL)
    b.add("messages", "`restore I --task inpaint --mask mask01.png` (values 0 and 1)", code, err, "nothing written",
          one_error(code, err) and "1 of 255" in err)

    code, _, err = run("denoise", "I.png", "--out", "I.png/run", *SMALL)
    b.add("messages", "`denoise I --out I.png/run`", code, err, "nothing written",
          one_error(code, err) and "is a file" in err)

    code, _, err = run("denoise", "I.png", "--out", "D", "--steps", "5", "--lr", "1e300", *SMALL)
    b.add("bad input, found in the fit", "`denoise I --lr 1e300 --steps 5`", code, err,
          "nothing written" if not Path("D").exists() else "D written", one_error(code, err) and "diverged" in err)

    code, _, err, _ = interrupt(signal.SIGINT, "denoise", "I.png", "--out", "G", "--steps", "10000000000", "--runs",
                                "1", *SMALL)
    b.add("bad input, huge budget", "`denoise I --steps 10000000000`, SIGINT", code, err,
          f"G: status {status(Path('G'))}", code == 130 and status(Path("G")) == "interrupted")

    Path("afile").write_text("x")
    code, _, err = run("data", "fetch", "triangle", "--to", "afile")
    b.add("bad input", "`data fetch triangle --to afile` (a file)", code, err,
          f"afile {'kept' if Path('afile').read_text() == 'x' else 'CHANGED'}", one_error(code, err))

    code, out, _ = run("denoise", "--help")
    text = " ".join(out.replace("│", " ").split())
    b.add("help", "`denoise --help`", code, "", f"usage `{text.split(' Denoise ')[0].strip()}`; `<bool>` shown: "
          f"{'<bool>' in text}", code == 0 and "<bool>" not in text)


API_CASES = """
import sys, torch
from dipscope import FitConfig, SkipSpec, DipscopeError
from dipscope.fit import fit
from skimage import data
t = torch.from_numpy(data.astronaut()[100:132, 200:232].astype('float32') / 255).permute(2, 0, 1).contiguous()
spec = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
nan = t.clone(); nan[0, 0, 0] = float('nan')
cases = {'NaN': (nan, None), 'inf': (t.clone().fill_(float('inf')), None), '0-255 float': (t * 255, None),
         'uint8': ((t * 255).to(torch.uint8), None), '(H, W, 3)': (t.permute(1, 2, 0), None), 'NaN clean': (t, nan)}
held = 0
for name, (target, clean) in cases.items():
    try:
        fit(spec, target, FitConfig(steps=2, device='cpu'), clean=clean)
        print(f'{name}: FITTED', file=sys.stderr)
    except DipscopeError as e:
        held += '--' not in str(e)
        print(f'{name}: {e}', file=sys.stderr)
print(f'{held} of {len(cases)} refused by parameter name', file=sys.stderr)
sys.exit(0 if held == len(cases) else 1)
"""

IMPORTS = """
import sys
import dipscope.restoration, dipscope
from dipscope import restore
from dipscope.cli.request import RestoreRequest, run as run_request
saved = run_request(RestoreRequest(image='I.png', out='S', steps=2, levels=3, device='cpu', runs=1))
print(f'dipscope.restore is the function: {dipscope.restore is restore and callable(restore)}; str paths: wrote {saved.out}', file=sys.stderr)
"""


def api(b: Battery) -> None:
    code, _, err = python(API_CASES)
    b.add("API, tensors", "`fit(spec, t, cfg)` with NaN, inf, 0–255, uint8, (H, W, 3) targets, NaN clean", code, err,
          out_of(code, err), code == 0)
    code, _, err = python(IMPORTS)
    b.add("API, names and paths", "`from dipscope import restore` after `import dipscope.restoration`; "
          "`RestoreRequest(image='I.png', out='S')`", code, err, out_of(code, err), code == 0 and "True" in err)


def paths(b: Battery) -> None:
    os.symlink("nowhere", "dangling")
    code, _, err = run("denoise", "I.png", "--out", "dangling", "--steps", "2", "--runs", "1", *SMALL)
    b.add("paths, links", "`denoise I --out dangling` (a link to a missing folder)", code, err,
          f"nowhere: status {status(Path('nowhere'))}; link kept: {Path('dangling').is_symlink()}",
          code == 0 and status(Path("nowhere")) == "complete")

    volume, mounted = Path("volume").resolve(), False
    volume.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(volume)],
                                 capture_output=True).returncode == 0
    if not mounted:
        b.add("paths, volumes", "`--out` a mount point; a full disk", 0, "", "needs a tmpfs mount", None)
        return
    try:
        code, _, err = run("denoise", "I.png", "--out", str(volume), "--steps", "2", "--runs", "1", *SMALL)
        b.add("paths, volumes", "`denoise I --out VOLUME` (a mount point)", code, err,
              "nothing written; no fit started" if "fitting" not in err else "a fit STARTED",
              one_error(code, err) and "fitting" not in err)
        (volume / "filler").write_bytes(b"\0" * 90_000)
        code, _, err = run("denoise", "I.png", "--out", str(volume / "R"), "--steps", "2", "--runs", "1", *SMALL)
        left = sorted(p.name for p in volume.iterdir())
        b.add("paths, full disk", "`denoise I --out VOLUME/R` (a 100 KB tmpfs, 90 KB used)", code, err,
              f"VOLUME: {left}", one_error(code, err) and left == ["filler"])
    finally:
        subprocess.run(["umount", str(volume)], capture_output=True)


GROUPS: dict[str, Callable[[Battery], None]] = {"signals": signals, "force": force, "sweeps": sweeps,
                                                "inputs": inputs, "api": api, "paths": paths}


def main(groups: list[str]) -> None:
    from skimage import data

    from dipscope.images import write_image

    unknown = set(groups) - set(GROUPS)
    if unknown:
        sys.exit(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    battery = Battery()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        write_image("I.png", data.astronaut()[100:164, 200:264].astype("float32") / 255.0)
        for name in groups or list(GROUPS):
            GROUPS[name](battery)
        os.chdir("/")
    print(battery.table())


if __name__ == "__main__":
    main(sys.argv[1:])
