"""The package's import direction: no module imports another module's private names, and none imports a module above
it in the layers below (so there are no import cycles). Imports inside functions count too."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "scaml"
# lowest first; a module may import from its own layer or any layer before it
LAYERS = [["core"], ["data"], ["io", "datasets"], ["input_scale"], ["preprocess", "streaming", "calibration"], ["solvers"],
          ["backends"], ["modelfile"], ["models"],
          ["actinn", "travel", "scanvi"],
          ["distributed", "outofcore", "predict_stream", "splits"], ["engines"], ["metrics", "ood"], ["plots"], ["results"],
          ["benchmark"], ["matrix", "learning_curves", "explain", "seurat"], ["novelty"], ["rejection", "report"], ["cli"]]
LEVEL = {m: i for i, layer in enumerate(LAYERS) for m in layer}

def scaml_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    "(line, imported scaml module, names) for every import of a scaml module in `path`, at any depth."
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1: mod = f"scaml.{mod}" if mod else "scaml"
            if mod == "scaml" or mod.startswith("scaml."):
                out.append((node.lineno, mod.removeprefix("scaml").lstrip("."), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("scaml."): out.append((node.lineno, a.name.removeprefix("scaml."), []))
    return out

def violations(pkg: Path, level: dict[str, int]) -> list[str]:
    "Every private-name import across modules, import of an unknown module, and import up the layers."
    bad = []
    for f in sorted(pkg.glob("*.py")):
        me = f.stem
        if me.startswith("_"): continue
        if me not in level:
            bad.append(f"{f.name}: module is in no layer; add it to LAYERS"); continue
        for line, mod, names in scaml_imports(f):
            if mod in ("", "_modidx"): continue                     # `import scaml` for __version__
            target = mod.split(".")[0]
            priv = [n for n in names if n.startswith("_")]
            if priv and target != me: bad.append(f"{f.name}:{line} imports private {priv} from scaml.{target}")
            if target not in level: bad.append(f"{f.name}:{line} imports unknown module scaml.{target}")
            elif level[target] > level[me]: bad.append(f"{f.name}:{line} imports scaml.{target}, a higher layer")
    return bad

def test_imports_only_go_down():
    assert violations(PKG, LEVEL) == []

def import_graph(pkg: Path) -> dict[str, set[str]]:
    "Which scaml modules each module imports (at any depth)."
    return {f.stem: {mod.split(".")[0] for _, mod, _ in scaml_imports(f) if mod not in ("", "_modidx")} - {f.stem}
            for f in pkg.glob("*.py") if not f.stem.startswith("_")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    "The import cycles of `graph` (each as a path that returns to its start)."
    found, state = [], {}
    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open": found.append(path[path.index(n):] + [n])
            elif n not in state: visit(n, path + [n])
        state[m] = "done"
    for m in sorted(graph):
        if m not in state: visit(m, [m])
    return found


def test_no_import_cycles():
    "Modules of one layer may import each other, but never in a circle."
    assert cycles(import_graph(PKG)) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]     # the check can fail


def test_every_module_has_a_layer():
    mods = {f.stem for f in PKG.glob("*.py") if not f.stem.startswith("_")}
    assert mods <= set(LEVEL), sorted(mods - set(LEVEL))

def test_the_rule_catches_violations(tmp_path):
    "A package that breaks the rule in each way is reported, line by line."
    (tmp_path / "core.py").write_text("from .data import check_adata\n")
    (tmp_path / "data.py").write_text("def f():\n    from scaml.results import _private\n")
    (tmp_path / "results.py").write_text("x = 1\n")
    bad = violations(tmp_path, {"core": 0, "data": 1, "results": 2})
    assert bad == ["core.py:1 imports scaml.data, a higher layer",
                   "data.py:2 imports private ['_private'] from scaml.results",
                   "data.py:2 imports scaml.results, a higher layer"]

def test_import_scaml_is_light():
    "The front door (`import scaml`) imports no heavy library until a name is used."
    code = ("import sys, scaml; heavy = [m for m in ('anndata', 'sklearn', 'torch', 'xgboost', 'matplotlib', 'scanpy') "
            "if m in sys.modules]; assert not heavy, heavy; print(scaml.run_benchmark.__module__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "scaml.benchmark"

@pytest.mark.parametrize("name", ["CellTypeModel", "annotate", "run_benchmark", "run_matrix", "learning_curve",
                                  "NoveltyDetector", "fit_rejection", "read", "load_task", "read_results"])
def test_front_door(name):
    import scaml
    assert callable(getattr(scaml, name)) and name in dir(scaml)


def source_notebook(path: Path) -> str | None:
    "The notebook a generated module names as its source (`File to edit: ../nbs/NAME.ipynb`)."
    m = re.search(r"File to edit: \.\./nbs/([^/\s]+)\.ipynb", path.read_text())
    return m.group(1) if m else None


def numbering_offences(pkg: Path, level: dict[str, int]) -> list[str]:
    "Modules whose notebook's number is not their layer, and numbers used by two notebooks."
    bad, seen = [], {}
    for f in sorted(pkg.glob("*.py")):
        if f.stem.startswith("_") or f.stem not in level: continue
        nb = source_notebook(f)
        if nb is None: bad.append(f"{f.name}: names no source notebook"); continue
        num = re.match(r"(\d+)([a-z]?)_", nb)
        if not num or int(num.group(1)) != level[f.stem]:
            bad.append(f"{f.name}: notebook {nb} should start with {level[f.stem]:02d} (its layer)")
        elif num.group(0) in seen: bad.append(f"{nb} and {seen[num.group(0)]} share the number {num.group(0)}")
        else: seen[num.group(0)] = nb
    return bad


def test_notebooks_are_numbered_by_layer():
    "A page's number is its module's layer (letters for the modules that share one), so the API reads bottom-up."
    assert numbering_offences(PKG, LEVEL) == []
    assert numbering_offences(PKG, {**LEVEL, "core": 3}) == ["core.py: notebook 00_core should start with 03 (its layer)"]
