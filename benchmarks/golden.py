"""A fingerprint of every experiment's smoke output and of a 20-step ``dipscope denoise``, to
show that a restructuring changed no result.

``python benchmarks/golden.py OUT.json`` runs, with one torch thread on the CPU, in a temporary
directory: the six experiments at ``--profile smoke`` (inputs: 64×64 crops of scikit-image's
bundled images, generated pattern images) and ``dipscope denoise`` for 20 steps; then it writes
the sha256 of every result file. Times, dates, paths, versions and process ids are not results:
``run.json`` is compared without them, CSV columns named ``seconds`` are dropped, and figures
(PNG files that matplotlib wrote, recognised by their metadata) are left out. ``--compare OLD.json`` prints every file whose
fingerprint differs and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
COMMON = ["--profile", "smoke", "--device", "cpu"]
VOLATILE = {"created", "command", "versions", "seconds", "seconds_per_step", "host", "pid", "path", "device",
            "executor", "clean"}


def commands(images: Path) -> dict[str, list[str]]:
    img, grey = str(images / "astro.png"), str(images / "camera.png")
    return {
        "denoise": ["denoise", img, "--out", "denoise", "--steps", "20", "--levels", "3", "--device", "cpu",
                    "--precision", "fp32", "--seed", "1"],
        "bias": ["experiment", "bias", grey, "--out", "bias", "--factor", "1", *COMMON, "--threads", "1"],
        "trajectory": ["experiment", "trajectory", "pattern:0.5", "--out", "trajectory", *COMMON, "--threads", "1"],
        "lowfreq-noise": ["experiment", "lowfreq-noise", grey, "--out", "lowfreq-noise", *COMMON],
        "upsampling": ["experiment", "upsampling", grey, "--out", "upsampling", "--stride", "2", "--stride", "4",
                       *COMMON],
        "denoise-table": ["experiment", "denoise-table", img, "--out", "denoise-table", "--factor", "1", "--runs", "1",
                          "--models", "dip,linear-16,relunet", *COMMON, "--precision", "fp32", "--threads", "1"],
        "gp-prior": ["experiment", "gp-prior", "--out", "gp-prior", "--profile", "smoke"],
    }


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def fingerprint(path: Path) -> str | None:
    data = path.read_bytes()
    if path.suffix == ".png" and b"Matplotlib" in data[:2000]:
        return None  # a figure: its pixels depend on fonts and matplotlib, not on the fit
    if path.name == "run.json":
        data = json.dumps(_scrub(json.loads(data)), sort_keys=True).encode()
    elif path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(data.decode())))
        if rows:
            keep = [i for i, name in enumerate(rows[0]) if name not in ("seconds", "seconds_per_run")]
            data = "\n".join(",".join(r[i] for i in keep if i < len(r)) for r in rows).encode()
    elif path.suffix == ".md":
        data = "\n".join(line for line in data.decode().splitlines() if " s)" not in line and "seconds" not in line).encode()
    return hashlib.sha256(data).hexdigest()


def make(out: Path) -> None:
    import numpy as np
    from skimage import data

    from dipscope.images import write_image

    manifest: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        write_image(images / "astro.png", data.astronaut()[100:164, 200:264].astype(np.float32) / 255)
        write_image(images / "camera.png", data.camera()[300:364, 200:264].astype(np.float32) / 255)
        for name, argv in commands(images).items():
            p = subprocess.run([sys.executable, "-m", "dipscope.cli", *argv], cwd=root, env=ENV,
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"{name} failed ({p.returncode}):\n{p.stderr[-2000:]}")
            for file in sorted((root / name).rglob("*")):
                if file.is_file() and ".unfinished-" not in str(file):
                    digest = fingerprint(file)
                    if digest is not None:
                        manifest[file.relative_to(root).as_posix()] = digest
    out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{len(manifest)} files fingerprinted in {out}")


def compare(old: Path, new: Path) -> int:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    for key in differ:
        print(f"{'changed' if key in a and key in b else 'only in ' + (old.name if key in a else new.name)}: {key}")
    print(f"{len(differ)} of {len(a.keys() | b.keys())} files differ")
    return 1 if differ else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier manifest to compare with")
    args = parser.parse_args()
    make(args.out)
    if args.compare:
        sys.exit(compare(args.compare, args.out))
