"""Layering: the engine never imports the TUI; the TUI never imports the training loop;
no import cycles and no upward imports in the engine (a contract over the import graph).

Every ``import`` statement counts, also those inside functions (a lazy import
still ties two modules together). A new cycle, or a module importing a layer
above its own, fails here with the edge that broke the rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_core_does_not_import_textual():
    mods = _modules_after(
        "import n2n_core, n2n_core.runs.folders, n2n_core.runs.summary, n2n_core.config.preset, n2n_core.cli.main"
    )
    assert "textual" not in mods
    # cli decides how OpenMP threads wait before torch loads (ompenv): importing it must not load torch.
    assert "torch" not in mods


def test_tui_does_not_import_torch_or_training():
    mods = _modules_after(
        "import n2n_tui.app\n"
        "import n2n_tui.screens.runs, n2n_tui.screens.dashboard, n2n_tui.screens.launch\n"
        "import n2n_tui.screens.presets, n2n_tui.screens.snapshots, n2n_tui.screens.compare\n"
        "import n2n_tui.screens.sweeps\n"
        "from n2n_core.sweeps.view import search_view; search_view({'space': {}}, ())"
    )
    assert "torch" not in mods
    assert "n2n_core.training.loop" not in mods
    # A search's view comes from sweep.json: showing one never loads Optuna (the scheduler's).
    assert "optuna" not in mods


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("n2n_core", "n2n_tui")

# Lowest first, by package. A module may import its own layer or the ones below,
# never above. A package that spans two layers names the lower module on its own
# (the most specific entry wins): the PSNR protocol sits below the tasks that
# validate with it; the benchmark's plain port is built from nothing of ours.
CORE_LAYERS = [
    {"errors", "formatting", "files", "version", "bench.plain_unet", "runs.layout"},
    {"process", "config", "pretrained"},
    {"data"},
    {"runs"},
    {"engine"},
    {"evaluation.protocol"},
    {"tasks"},
    {"evaluation", "pretrained.pack"},
    {"training"},
    {"sweeps", "bench"},
    {"cli"},
]


def _modules(pkg: str) -> dict[str, Path]:
    out = {}
    for f in (ROOT / pkg).rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for pkg in PACKAGES:
        mods.update(_modules(pkg))
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                stem = ".".join(base + ([node.module] if node.module else []))
                names = [stem] + [f"{stem}.{a.name}" for a in node.names]
            for name in names:
                # the deepest module of ours the name refers to
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _core_layer(mod: str) -> int | None:
    rel = mod.removeprefix("n2n_core.")
    best = None  # the most specific entry wins ("mri.schedule" over "mri")
    for i, layer in enumerate(CORE_LAYERS):
        for entry in layer:
            if rel == entry or rel.startswith(entry + "."):
                if best is None or len(entry) > len(best[1]):
                    best = (i, entry)
    return None if best is None else best[0]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_engine_layers_only_import_downwards():
    graph = import_graph()
    core = [m for m in graph if m.startswith("n2n_core.")]
    unplaced = [m for m in core if _core_layer(m) is None]
    assert unplaced == [], "add these modules to a layer in CORE_LAYERS"
    upward = [
        f"{m} -> {dep}"
        for m in core
        for dep in sorted(graph[m])
        if dep.startswith("n2n_core.") and _core_layer(dep) > _core_layer(m)
    ]
    assert upward == []
    assert not [f"{m} -> {d}" for m in core for d in graph[m] if d.startswith("n2n_tui")]


def test_sweep_backends_never_import_each_other():
    graph = import_graph()
    assert "n2n_core.sweeps.slurm" not in graph["n2n_core.sweeps.local"]
    assert "n2n_core.sweeps.local" not in graph["n2n_core.sweeps.slurm"]


def test_writing_run_folders_and_sweeps_needs_no_torch():
    # Creating a run or a sweep's points writes preset.yaml and run.json only;
    # launching decides OpenMP's waiting before torch loads.
    mods = _modules_after(
        "import n2n_core.runs.folders, n2n_core.sweeps.store, n2n_core.sweeps.view\n"
        "import n2n_core.training.launch, n2n_core.cli.commands, n2n_core.files.output"
    )
    assert "torch" not in mods


def test_tui_models_draw_nothing():
    graph = import_graph()
    models = [m for m in graph if m.startswith("n2n_tui.models")]
    assert models
    for m in models:
        drawn = [d for d in graph[m] if d.startswith(("n2n_tui.screens", "n2n_tui.widgets"))]
        assert drawn == [] and "n2n_tui.app" not in graph[m], m
    mods = _modules_after("import " + ", ".join(models))
    assert "textual" not in mods and "torch" not in mods
