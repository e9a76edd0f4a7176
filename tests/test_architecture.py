"""The layering of docs/architecture.md: no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dipscope"

# Bottom to top; a module may import from its own layer or any below.
LAYERS = [
    {"errors", "files", "interrupts", "runtime", "images", "arrays", "metrics", "spectral", "datasets", "plots"},
    {"physics", "models", "gp", "baselines", "tasks"},
    {"fit", "presets"},
    {"stopping", "callbacks"},
    {"runs"},
    {"restoration", "report", "bench", "time_to_result", "experiments", "interop"},
    {"cli"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def top_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def imported(path: Path) -> set[str]:
    """First-level dipscope modules that ``path`` imports (relative or absolute)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC).parent.parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from . import x" at the top level
                    out |= {a.name for a in node.names}
                else:
                    out.add(parts[0])
            elif node.module and node.module.startswith("dipscope."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dipscope.")}
    return out


def test_every_module_has_a_layer() -> None:
    names = {top_name(p) for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC}
    assert names <= set(LAYER_OF), sorted(names - set(LAYER_OF))


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = []
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue  # the public API loads names lazily from every layer
        mine = LAYER_OF[top_name(path)]
        for other in imported(path):
            if other in LAYER_OF and LAYER_OF[other] > mine:
                upward.append(f"{path.relative_to(SRC)} imports {other}")
    assert not upward, upward
