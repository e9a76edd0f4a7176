"""Run every case of issue 14 against the installed ``dipscope`` and print the Markdown table of
``docs/reliability.md``: command → exit status, message, what is on disk after.

Usage: ``python benchmarks/reliability.py > docs/reliability-table.md`` (about two minutes on
2 CPU cores; everything happens in a temporary directory; one torch thread).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
DIPSCOPE = [sys.executable, "-m", "dipscope.cli"]
SMALL = ["--levels", "3", "--device", "cpu"]


def run(*args: str) -> tuple[int, str, str]:
    p = subprocess.run([*DIPSCOPE, *args], capture_output=True, text=True, env=ENV)
    return p.returncode, p.stdout, p.stderr


def interrupt(signum: int, *args: str, wait_for_fit: bool = True) -> tuple[int, str, str]:
    """Start a long fit, send ``signum`` one second after it starts (or 10 s after the process
    starts when it prints no ``fitting`` line), return (status, stdout, stderr)."""
    p = subprocess.Popen([*DIPSCOPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    seen = []
    assert p.stderr is not None
    if wait_for_fit:
        for line in p.stderr:
            seen.append(line)
            if line.startswith("fitting"):
                break
        time.sleep(1.0)
    else:
        time.sleep(10.0)
    p.send_signal(signum)
    out, err = p.communicate()
    return p.returncode, out, "".join(seen) + err


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:12]


def message(err: str) -> str:
    lines = [line.strip() for line in err.splitlines()
             if line.strip().startswith(("error:", "interrupted", "aborted"))]
    return lines[-1] if lines else "–"


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


def main() -> None:
    from skimage import data

    from dipscope.images import write_image

    rows: list[tuple[str, str, int, str, str]] = []

    def add(case: str, command: str, code: int, err: str, disk: str) -> None:
        rows.append((case, command, code, message(err), disk))

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        write_image("I.png", data.astronaut()[100:164, 200:264].astype("float32") / 255.0)

        code, _, err = run("denoise", "I.png", "--out", "R", "--steps", "5", *SMALL)
        Path("R/notes.txt").write_text("mine")
        before = digest(Path("R"))
        code, out, err = interrupt(signal.SIGINT, "denoise", "I.png", "--out", "R", "--steps", "2000", "--force", *SMALL)
        beside = sorted(Path(".").glob("R.interrupted-*"))
        add("1, 7", "`denoise I --out R --steps 2000 --force` (R a finished run), SIGINT after the fit starts", code, err,
            f"R {'unchanged' if digest(Path('R')) == before else 'CHANGED'} (with notes.txt); "
            f"{beside[0].name if beside else 'nothing'} beside it: status {status(beside[0]) if beside else '–'}")

        code, _, err = run("experiment", "denoise-table", "I.png", "--models", "dip", "--runs", "2", "--profile",
                           "smoke", "--factor", "1", "--device", "cpu", "--out", "X")
        before = digest(Path("X"))
        code, _, err = run("experiment", "denoise-table", "I.png", "--models", "dip", "--runs", "2", "--profile",
                           "smoke", "--factor", "1", "--device", "cpu", "--out", "X", "--sigma", "15")
        add("2", "`experiment denoise-table I … --out X` again with `--sigma 15`", code, err,
            f"X {'unchanged (inputs/ included)' if digest(Path('X')) == before else 'CHANGED'}")

        for case, args in [("3", ["--sigma", "nan"]), ("3", ["--lr", "inf"]), ("3", ["--out", "/proc/x"]),
                           ("3", ["--out", ".", "--force"]), ("4", ["--seed", "-1"]),
                           ("10", ["--width", "0"]), ("10", ["--levels", "99"])]:
            out_dir = args[args.index("--out") + 1] if "--out" in args else "O"
            full = ["denoise", "I.png", *(["--out", "O"] if "--out" not in args else []), "--steps", "2000",
                    "--device", "cpu", *args]
            t0 = time.perf_counter()
            code, _, err = run(*full)
            seconds = time.perf_counter() - t0
            disk = "nothing written" if out_dir in (".", "/proc/x") or not Path(out_dir).exists() else "O created"
            fitted = "a fit STARTED" if "fitting" in err else "no fit started"
            add(case, f"`denoise I {' '.join(args)}`", code, err, f"{disk}; {fitted}; {seconds:.1f} s in all")

        code, out, err = run("denoise", "I.png", "--out", "S", "--steps", "5", *SMALL)
        stop = json.loads(Path("S/run.json").read_text())["stopping"]
        same = Path("S/denoised.png").read_bytes() == Path("S/final.png").read_bytes()
        add("5", "`denoise I --steps 5`", code, err,
            f"denoised.png {'=' if same else '≠'} final.png; run.json stopping: source `{stop['source']}`, "
            f"\"{stop['reason']}\"")

        code, _, err = interrupt(signal.SIGTERM, "denoise", "I.png", "--out", "T", "--steps", "2000", *SMALL)
        add("6, 7", "`denoise I --out T --steps 2000`, SIGTERM after the fit starts", code, err,
            f"T: status {status(Path('T'))}, {len(list(Path('T').glob('*.png')))} PNGs")

        code, _, err = interrupt(signal.SIGTERM, "experiment", "denoise-table", "I.png", "--models", "dip", "--runs",
                                 "1", "--profile", "smoke", "--steps", "dip=100000", "--factor", "1", "--device", "cpu",
                                 "--out", "Y", wait_for_fit=False)
        add("6, 7", "`experiment denoise-table I --steps dip=100000 … --out Y`, SIGTERM after 10 s", code, err,
            f"Y/dip/I: {sorted(p.name for p in Path('Y/dip/I').iterdir()) if Path('Y/dip/I').exists() else 'none'}"
            " (no half-written run)")

        Path("P").mkdir()
        Path("P/holiday.jpg").write_bytes(b"x")
        code, _, err = run("denoise", "I.png", "--out", "P", "--force", *SMALL)
        add("8", "`denoise I --out P --force` (P a folder of other files)", code, err,
            f"P/holiday.jpg {'kept' if Path('P/holiday.jpg').exists() else 'LOST'}")

        stale = Path("X/dip/I/.run-1.partial-killed")
        stale.mkdir()
        (stale / ".writing.lock").write_text("")
        os.utime(stale, (time.time() - 3600,) * 2)  # left an hour ago by a killed process
        import shutil
        shutil.rmtree("X/dip/I/run-1")
        code, out, err = run("experiment", "denoise-table", "I.png", "--models", "dip", "--runs", "2", "--profile",
                             "smoke", "--factor", "1", "--device", "cpu", "--out", "X")
        add("9", "resume X after a killed run left `.run-1.partial-*`", code, err,
            f"partial {'removed' if not stale.exists() else 'LEFT'}; run-1 {status(Path('X/dip/I/run-1'))}")

        Path("X/dip/I/run-0/run.json").write_text('{"task": "dip/I/run-0", "summ')
        code, out, err = run("experiment", "denoise-table", "I.png", "--models", "dip", "--runs", "2", "--profile",
                             "smoke", "--factor", "1", "--device", "cpu", "--out", "X")
        aside = sorted(Path("X/dip/I").glob("run-0.unfinished-*"))
        add("also", "resume X with a truncated `run-0/run.json`", code, err,
            f"{aside[0].name if aside else 'nothing'} set aside; run-0 {status(Path('X/dip/I/run-0'))}")

        code, out, err = run("experiment", "denoise-table", "I.png", "--models", "dip", "--runs", "2", "--profile",
                             "smoke", "--factor", "1", "--device", "cpu", "--out", "X", "--threads", "2")
        add("also", "resume X (made with 1 thread) with `--threads 2`", code, err, "X unchanged")

        Path("huge.png").write_bytes(png_header(100_000, 100_000))
        code, _, err = run("denoise", "huge.png", "--out", "H")
        add("10", "`denoise huge.png` (header claims 100000×100000)", code, err, "nothing written")

        code, out, _ = run("denoise", "--help")
        text = " ".join(out.replace("│", " ").split())
        usage = text.split(" Denoise ")[0].strip()
        steps = text.split("--steps")[1].split("--stop")[0].strip()
        add("11", "`denoise --help`", code, "",
            f"usage `{usage}`; `--steps <int> {steps[6:120]}…`; `<bool>` shown: {'<bool>' in text}")

    print("| defect | command | exit | message | on disk after |")
    print("|---|---|---|---|---|")
    for case, command, code, msg, disk in rows:
        print(f"| {case} | {command} | {code} | {msg.replace('|', '/')} | {disk} |")


if __name__ == "__main__":
    main()
