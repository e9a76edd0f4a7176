"""Quality parity: the fast execution path — and bf16 — restore as well as the reference.

Two comparisons on the same noisy images and seeds (the ``ulyanov2018`` preset unless ``--preset``
says another, one run per seed; σ = 25):

* ``--compare modes`` (the default, as before): the reference mode (fp32, NCHW, eager, stock
  Adam) against the default fast mode; target |Δ mean best PSNR| ≤ 0.15 dB;
* ``--compare precision`` (issue 16): fp32 against bf16, both on the fast path otherwise, on
  six images; per image the best PSNR (oracle pick, snapshots every 10 steps) *and* the PSNR
  of ``denoised.png`` as the default stopping rule chooses it; target mean |Δ| ≤ 0.15 dB for
  both. ``auto`` precision may choose bf16 only where this holds on that kind of machine.

Images: crops of scikit-image's bundled photographs (no download).

Usage: python benchmarks/quality_parity.py [--compare modes|precision] [--preset NAME] [--steps N]
       [--sizes 64,128] [--seeds 3] [--device cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage import data

from dipscope.bench import FAST, REFERENCE
from dipscope.fit import Callback, FitState, fit
from dipscope.metrics import psnr
from dipscope.physics import GaussianNoise
from dipscope.presets import PRESETS, preset
from dipscope.stopping import EarlyStopping
from dipscope.runtime import machine

# name: (loader, relative position of the crop) — chosen on texture: hair, beans, fur, …
IMAGES = {"astronaut": (data.astronaut, (0.12, 0.35)), "coffee": (data.coffee, (0.30, 0.35)),
          "chelsea": (data.chelsea, (0.25, 0.45)), "rocket": (data.rocket, (0.20, 0.40)),
          "camera": (data.camera, (0.35, 0.30)), "immunohistochemistry": (data.immunohistochemistry, (0.3, 0.3))}
MODES = {"modes": {"reference": REFERENCE, "fast": FAST},
         "precision": {"fp32": {**FAST, "precision": "fp32"}, "bf16": {**FAST, "precision": "bf16"}}}


def crop(name: str, size: int) -> torch.Tensor:
    """A size×size crop at a fixed relative position, (C, H, W) in [0, 1]."""
    loader, (fy, fx) = IMAGES[name]
    a = loader()
    y, x = int(fy * a.shape[0]), int(fx * a.shape[1])
    patch = a[y:y + size, x:x + size].astype(np.float32) / 255.0
    return torch.from_numpy(patch[None] if patch.ndim == 2 else np.moveaxis(patch[..., :3], -1, 0).copy())


class Watch(Callback):
    """Runs the default stopping rule without letting it stop the fit: the best PSNR stays the
    oracle over every step, and the rule's image is the one it chose when it would have stopped."""

    def __init__(self, stopper: EarlyStopping) -> None:
        self.stopper, self.every = stopper, stopper.every

    def on_start(self, state: FitState) -> None:
        self.stopper.on_start(state)

    def observe(self, state: FitState) -> bool:
        self.stopper.observe(state)
        return False

    def on_end(self, state: FitState) -> None:
        self.stopper.on_end(state)


def one_fit(clean: torch.Tensor, seed: int, steps: int, mode: dict, device: str,
            preset_name: str = "ulyanov2018") -> tuple[float, float]:
    """Best PSNR over the run, and the PSNR of the default stopping rule's image."""
    spec, base = preset(preset_name)
    noisy = GaussianNoise(25 / 255, 100 + seed)(clean, clip=True)
    stopper = EarlyStopping("auto", noisy)
    r = fit(spec, noisy, replace(base, steps=steps, seed=seed, device=device, **mode), clean=clean, ssim=False,
            callbacks=[Watch(stopper)])
    assert stopper.choice is not None
    return r.best_psnr, psnr(stopper.choice.image, clean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(MODES), default="modes")
    parser.add_argument("--preset", default="ulyanov2018", choices=PRESETS,
                        help="the network and fit (one run per seed, also for presets that average several)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", default=None, help="comma-separated (default: 3 for modes, 6 for precision)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality_parity-latest.md"))
    args = parser.parse_args()
    modes = MODES[args.compare]
    names = args.images.split(",") if args.images else list(IMAGES)[:3 if args.compare == "modes" else 6]
    a, b = list(modes)
    lines = [f"Quality parity ({a} vs {b}), {args.preset} preset (one run per seed), at most {args.steps} steps, σ = 25, seeds "
             f"0–{args.seeds - 1}; machine: {machine()}. Best = oracle pick over snapshots every 10 steps; "
             "stopped = the default rule's denoised image (dB).", "",
             f"| size | image | best {a} | best {b} | Δ best | stopped {a} | stopped {b} | Δ stopped |",
             "|---|---|---|---|---|---|---|---|"]
    summary = []
    for size in [int(s) for s in args.sizes.split(",")]:
        deltas: dict[str, list[float]] = {"best": [], "stopped": []}
        for name in names:
            clean = crop(name, size)
            cell: dict[str, tuple[float, float]] = {}
            for mode_name, mode in modes.items():
                t = time.perf_counter()
                pairs = [one_fit(clean, seed, args.steps, mode, args.device, args.preset) for seed in range(args.seeds)]
                cell[mode_name] = (statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs))
                print(f"{size} {name} {mode_name}: best {cell[mode_name][0]:.2f}, stopped {cell[mode_name][1]:.2f} dB "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
            db, ds = cell[b][0] - cell[a][0], cell[b][1] - cell[a][1]
            deltas["best"].append(db)
            deltas["stopped"].append(ds)
            lines.append(f"| {size} | {name} | {cell[a][0]:.2f} | {cell[b][0]:.2f} | {db:+.2f} | {cell[a][1]:.2f} | "
                         f"{cell[b][1]:.2f} | {ds:+.2f} |")
        for what, d in deltas.items():
            m = statistics.mean(abs(x) for x in d)
            summary.append(f"{size}×{size}, {what}: mean |Δ| = {m:.3f} dB, mean Δ = {statistics.mean(d):+.3f} dB over "
                           f"{len(d)} images ({'within' if m <= 0.15 else 'OUTSIDE'} 0.15 dB)")
    report = "\n".join(lines + [""] + summary) + "\n"
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
