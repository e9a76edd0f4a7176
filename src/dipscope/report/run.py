"""The report of one ``dipscope denoise`` / ``dipscope restore`` run directory.

It is built from the directory's files and its record (the content of ``run.json``): the
measurement, the result and the clean image side by side; the loss and PSNR curves of the
first run (``losses.csv``, ``metrics.csv``) with its chosen step marked; each run's choice
(seed, step, rule, reason) from the record's ``stopping`` section; the per-band error when it
was recorded (``spectral.csv``, ``spectral.npz``); the other images of the run; its settings.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..tasks import MEASUREMENT_FILES, RESULT_FILES
from . import figures
from .page import array_uri, esc, figure, file_uri, fmt, page, table


def is_restore_record(record: dict[str, Any] | None) -> bool:
    """True for the record of a ``denoise``/``restore`` run (it names its task, degradation and stopping)."""
    return bool(record) and record.get("task") in RESULT_FILES and isinstance(record.get("stopping"), dict) \
        and isinstance(record.get("degradation"), dict)


def run_report_html(directory: str | Path, record: dict[str, Any], clean: torch.Tensor | None = None,
                    clean_label: str | None = None) -> str:
    """The report page of the run in ``directory`` (a complete HTML document).

    Parameters
    ----------
    directory
        The run directory (or the temporary directory it is being written into).
    record
        The run's record, as written to ``run.json``.
    clean
        The clean reference image, shown beside the measurement and the result when given
        (it is not kept in the run directory); ``clean_label`` names where it came from.

    Returns
    -------
    str
        The page: every image and plot inline, no reference to another file.
    """
    directory = Path(directory)
    task, stopping = record["task"], record["stopping"]
    title = f"dipscope {task}: {Path(str(record.get('image', {}).get('path', directory.name))).name}"
    body = [f"<h1>{esc(title)}</h1>", _lead(record),
            "<h2>Measurement, result and clean image</h2>", _images(directory, record, clean, clean_label),
            "<h2>Each run's choice</h2>", _choices(record),
            "<h2>Loss and PSNR</h2>", _curves(directory, record, stopping)]
    spectra = _spectra(directory, record)
    if spectra:
        body += ["<h2>Per-band error against the clean image</h2>", spectra]
    others = _other_images(directory, task)
    if others:
        body += ["<h2>Other images of the run</h2>", others]
    body += ["<h2>Settings</h2>", _settings(record)]
    return page(title, body)


def _lead(record: dict[str, Any]) -> str:
    status = record.get("status", "complete")
    result = record.get("result", {})
    parts = [f"preset {record.get('preset')}", f"model {record.get('model', {}).get('family')}",
             f"{result.get('steps_done')} steps in {fmt(result.get('seconds'), 1)} s",
             f"{record.get('device', {}).get('type', '?')} ({result.get('precision', '?')})",
             f"written {record.get('created', '?')}"]
    return (f'<p class="lead"><span class="status {esc(status)}">{esc(status)}</span> '
            f"{esc(' · '.join(parts))}</p>")


def _images(directory: Path, record: dict[str, Any], clean: torch.Tensor | None, clean_label: str | None) -> str:
    task, stopping = record["task"], record["stopping"]
    shown = []
    measured, result = directory / MEASUREMENT_FILES[task], directory / RESULT_FILES[task]
    if measured.is_file():
        psnr = record.get("measurement_psnr")
        shown.append(figure(file_uri(measured), f"measurement ({measured.name})"
                            + (f": PSNR {psnr:.2f} dB" if psnr is not None else ""), alt="measurement"))
    if result.is_file():
        psnr = stopping.get("result_psnr")
        shown.append(figure(file_uri(result), f"result ({result.name}): {stopping.get('source')} at step "
                            f"{stopping.get('step')}" + (f", PSNR {psnr:.2f} dB" if psnr is not None else ""),
                            alt="result"))
    if clean is not None:
        shown.append(figure(array_uri(clean), f"clean reference ({clean_label or 'given'})", alt="clean"))
    note = "" if clean is not None else '<p class="note">No clean image is known for this run.</p>'
    return f'<div class="row">{"".join(shown)}</div>{note}'


def run_choices(record: dict[str, Any]) -> list[tuple[int | None, dict[str, Any]]]:
    """Each run's ``(seed, stopping record)``: one for a single run, one per averaged run for an ensemble."""
    stopping = record["stopping"]
    if isinstance(stopping.get("runs"), list):
        return list(zip(stopping.get("seeds", [None] * len(stopping["runs"])), stopping["runs"]))
    return [(record.get("seed"), stopping)]


def _choices(record: dict[str, Any]) -> str:
    stopping = record["stopping"]
    rows = []
    for k, (seed, choice) in enumerate(run_choices(record)):
        sigma = choice.get("sigma_255")
        how = "given" if choice.get("sigma_given") else choice.get("sigma_estimator", "estimated")
        rows.append([k, fmt(seed), choice.get("rule") or "none", fmt(choice.get("step")), fmt(choice.get("max_steps")),
                     fmt(bool(choice.get("stopped_early"))), choice.get("source", "–"),
                     f"{sigma:.1f} ({how})" if sigma is not None else "–", fmt(choice.get("result_psnr")),
                     choice.get("reason", "–")])
    header = ["run", "seed", "rule", "step chosen", "of at most", "stopped early", "which image", "σ (0–255)", "PSNR (dB)",
              "reason"]
    interrupted = '<p class="note">The fit was interrupted: the outputs are those reached.</p>' \
        if stopping.get("interrupted") else ""
    if len(rows) > 1:
        how = f"{stopping.get('reason')}, each taken at the step in the table below"
    else:
        rule = stopping.get("rule")
        how = f"the {stopping.get('source')} at step {stopping.get('step')} of at most {stopping.get('max_steps')}, " \
              + (f"chosen by the rule {rule}" if rule else "the last step (no stopping rule)")
    return f"<p>{esc(RESULT_FILES[record['task']])} is {esc(how)}.</p>" + table(header, rows) + interrupted


def first_run_stop(record: dict[str, Any]) -> int | None:
    """The step chosen in the first run (the one whose curves the directory keeps), or None if unknown."""
    choices = run_choices(record)
    seed, choice = choices[0]
    if len(choices) > 1 and seed != record.get("seed"):
        return None  # the first run was not among those averaged
    return choice.get("step")


def _curves(directory: Path, record: dict[str, Any], stopping: dict[str, Any]) -> str:
    losses = _read_csv(directory / "losses.csv")
    metrics = _read_csv(directory / "metrics.csv")
    if not losses and not metrics:
        return '<p class="note">No curves were recorded (no losses.csv or metrics.csv).</p>'
    source = losses if losses else metrics
    steps, values = _column(source, "loss")
    psnr = {label: _column(metrics, key) for key, label in (("psnr", "output"), ("psnr_ema", "EMA"))}
    psnr = {label: curve for label, curve in psnr.items() if curve[0]}
    stop = first_run_stop(record)
    rule = stopping.get("rule")
    label = f"chosen step {stop}" + (f" ({rule})" if rule else " (no rule: the last step)")
    which = " of the first run" if len(run_choices(record)) > 1 else ""
    uri = figures.fit_curves(steps, values, psnr, stop, label)
    return figure(uri, f"Loss and PSNR{which} over the steps; {_mark(stop)}.", kind="plot",
                  alt="loss and PSNR curves")


def _mark(stop: int | None) -> str:
    return f"the dashed line marks step {stop}, the step chosen" if stop is not None else \
        "no step is marked: the first run was not among those averaged"


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    """The ``(steps, values)`` of ``key`` over the rows where it holds a number."""
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if value not in (None, ""):
            steps.append(int(float(row["step"])))
            values.append(float(value))
    return steps, values


def _spectra(directory: Path, record: dict[str, Any]) -> str:
    """The per-band error of ``spectral.csv`` (against the clean image), or '' when not recorded."""
    rows = [r for r in _read_csv(directory / "spectral.csv") if r.get("reference") == "clean"]
    if not rows:
        return ""
    steps = sorted({int(r["step"]) for r in rows})
    bands = list(dict.fromkeys(r["band"] for r in rows))
    errors = np.full((len(steps), len(bands)), np.nan)
    for r in rows:
        errors[steps.index(int(r["step"])), bands.index(r["band"])] = float(r["error"])
    labels, tau = _band_labels(directory, bands)
    stop = first_run_stop(record)
    uri = figures.band_errors(steps, errors, labels, stop, f"chosen step {stop}", tau)
    return figure(uri, "Relative error e_k of the first run's output in each radial frequency band over the steps "
                  f"(low bands first); {_mark(stop)}.", kind="plot", alt="per-band error")


def _band_labels(directory: Path, bands: list[str]) -> tuple[list[str], float | None]:
    """Band names as frequency ranges (from ``spectral.npz``'s edges when present) and its ``tau``."""
    try:
        with np.load(directory / "spectral.npz") as saved:
            edges, tau = saved["edges"], float(saved["tau"])
    except (OSError, KeyError, ValueError):
        return [f"band {b}" for b in bands], None
    labels = []
    for b in bands:
        k = int(b) if b.isdigit() else None
        labels.append(f"{edges[k]:.3f}–{edges[k + 1]:.3f}" if k is not None and k + 1 < len(edges) else "corner >0.5")
    return labels, tau


def _other_images(directory: Path, task: str) -> str:
    main = {MEASUREMENT_FILES[task], RESULT_FILES[task]}
    captions = {"final.png": "the output at the last step fitted", "ema.png": "the EMA of the outputs at the last step",
                "best.png": "the output of highest PSNR", "mask.png": "the mask (white = known)"}
    stem = RESULT_FILES[task].removesuffix(".png")
    shown = []
    for path in sorted(directory.glob("*.png")):
        if path.name in main or path.name in ("curves.png", "spectrum.png"):
            continue
        if path.name.startswith(f"{stem}-run-"):
            caption = f"run {path.stem.rsplit('-', 1)[-1]}'s chosen image"
        else:
            caption = captions.get(path.name, "")
        shown.append(figure(file_uri(path), f"{path.name}: {caption}" if caption else path.name, kind="small",
                            alt=path.name))
    return f'<div class="row">{"".join(shown)}</div>' if shown else ""


def _settings(record: dict[str, Any]) -> str:
    fit, image, result = record.get("fit", {}), record.get("image", {}), record.get("result", {})
    degradation = ", ".join(f"{k} {v}" for k, v in record.get("degradation", {}).items() if v is not None)
    versions = record.get("versions", {})
    rows = [("task", record.get("task")), ("image", f"{image.get('path')} ({'×'.join(map(str, image.get('shape', [])))})"),
            ("degradation", degradation), ("preset", record.get("preset")),
            ("model", record.get("model", {}).get("family")), ("parameters", result.get("n_parameters")),
            ("steps (at most)", fit.get("steps")), ("learning rate", fit.get("lr")),
            ("precision", fit.get("precision_resolved")), ("device", _device(record.get("device", {}))),
            ("versions", ", ".join(f"{k} {versions[k]}" for k in ("dipscope", "torch", "python") if k in versions)),
            ("command", " ".join(map(str, record.get("command", []))))]
    full = json.dumps(record, indent=2, default=str)
    return (table(["setting", "value"], [(k, fmt(v)) for k, v in rows], numeric=False)
            + f"<details><summary>the whole run.json</summary><pre>{esc(full)}</pre></details>")


def _device(device: dict[str, Any]) -> str:
    name = device.get("name")
    return f"{device.get('type', '?')}" + (f" ({name})" if name else "")


def clean_from_record(record: dict[str, Any]) -> tuple[torch.Tensor | None, str]:
    """The clean reference of a finished run, read again from where its record says it was.

    For a degraded IMAGE the image itself (only if its sha256 still matches); for a given
    measurement the clean file it named. Returns ``(image or None, a label saying where)``.
    """
    from ..datasets import sha256_file
    from ..images import read_image

    degradation, image = record.get("degradation", {}), record.get("image", {})
    if degradation.get("kind") == "given":
        path = degradation.get("clean")
        if path and Path(path).is_file():
            return read_image(path), str(path)
        return None, ""
    path = image.get("path")
    if path and Path(path).is_file() and sha256_file(path) == image.get("sha256"):
        return read_image(path), f"the input {path}"
    return None, ""
