#!/usr/bin/env python
"""Find the demonstration cells of the docs pages that are committed without their outputs.

The docs site shows the outputs saved in the notebooks; it does not run them. A page whose examples were committed
unexecuted shows code and no results. A *demonstration cell* is a code cell that the page shows and that would show
something when run:

- not an `export`/`exporti`/`exports`/`hide`/`default_exp` cell, not `eval: false`, `include: false` or
  `output: false`, not flagged `gpu` or `download` (those cannot run where the docs are built);
- not imports only, and not ending in `;`;
- and either its last statement is an expression (other than a call that returns nothing, such as `test_eq(...)`
  or `plt.close()`), or it calls `print`, `display` or `show_doc`, or it draws a figure and does not close it: it
  calls a plotting function (`pl.*`, `plt.*`, `*plot*`, or a name imported from `scaml.plots`) or ends in an
  assignment to `ax`/`fig`.

It has its output when at least one output is not a stderr stream (warnings and progress bars don't count).
The rendered notebooks are those in `nbs/` and its folders, except `nbs/analysis/` (papermill notebooks, committed
unexecuted) and names starting with `_` or `.`.

Usage: `python scripts/check_outputs.py [NOTEBOOK ...]` lists the cells without outputs; exits 1 if there are any.
`--list` prints the rendered notebooks.
`scripts/run_notebooks.sh` refreshes the outputs.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
# folders of nbs/ whose notebooks are not committed executed
UNEXECUTED = {"analysis"}
# directives that keep a cell's output off the page, or keep the cell from running where the docs are built
NO_OUTPUT = {"export", "exporti", "exports", "hide", "default_exp", "gpu", "download", "eval:false", "include:false",
             "output:false"}
# calls that return None: a cell ending in one of them shows nothing
QUIET = re.compile(r"^(test_\w*|assert_\w*|expect_fail|plt\.close|plt\.ioff|\w+\.seed|np\.random\.seed|torch\.manual_seed"
                   r"|warnings\.\w+|logging\.\w+|set_verbosity|\w+\.set_verbosity|os\.chdir|os\.makedirs|\w+\.mkdir"
                   r"|\w+\.unlink|shutil\.\w+)$")
SHOWS = re.compile(r"^(print|display|show_doc|pl\.\w+|plt\.(?!close$|ioff$|rcParams$)\w+|sns\.\w+|plots\.\w+|scaml\.pl\.\w+"
                   r"|.*plot\w*)$")
# a cell ending in `ax = ...` draws a figure that the page shows
FIGURES = {"ax", "axes", "axs", "fig", "figure", "g", "grid"}


def rendered_notebooks(root: Path = ROOT) -> list[Path]:
    "The notebooks the docs site renders: every notebook under nbs/ but those in nbs/analysis/ and `_`/`.` names."
    nbs = root / "nbs"
    out = []
    for p in sorted(nbs.rglob("*.ipynb")):
        rel = p.relative_to(nbs)
        if any(part.startswith(("_", ".")) for part in rel.parts) or rel.parts[0] in UNEXECUTED: continue
        out.append(p)
    return out


def directives(source: str) -> set[str]:
    "The cell's `#|` directives, spaces removed (`#| eval: false` -> 'eval:false', `#| default_exp x` -> 'default_exp')."
    out = set()
    for ln in source.splitlines():
        m = re.match(r"^\s*#\s*\|\s*(.*?)\s*$", ln)
        if not m:
            if ln.strip() and not ln.strip().startswith("#"): break
            continue
        d = m.group(1).lower()
        if ":" in d: out.add(re.sub(r"\s+", "", d))
        else: out.update(d.split()[:1])
    return out


def _name(node: ast.AST) -> str:
    "Dotted name of a call's function (`pl.confusion_matrix`, `model.fit`), '' when it is not a plain name."
    if isinstance(node, ast.Name): return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else f"?.{node.attr}"
    return ""


def plot_names(cells: list[dict]) -> set[str]:
    "Names a notebook imports from `scaml.plots` (called without the `pl.` prefix)."
    names = set()
    for c in cells:
        if c.get("cell_type") != "code": continue
        for m in re.finditer(r"from\s+scaml\.(?:plots|pl)\s+import\s+\(?([\w\s,]+)\)?", _src(c)):
            names.update(n.split(" as ")[-1].strip() for n in m.group(1).split(",") if n.strip())
    return names


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def is_demo(source: str, plots: set[str] = frozenset()) -> bool:
    "Whether a code cell with this source shows its result on a docs page (see the module docstring)."
    if directives(source) & NO_OUTPUT: return False
    body = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("!", "%", "#|")))
    if not body.strip(): return False
    try: tree = ast.parse(body)
    except SyntaxError: return False
    stmts = tree.body
    if not stmts or all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in stmts): return False
    calls = {_name(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)} - {""}
    if calls & {"print", "display", "show_doc"}: return True
    closes = "plt.close" in calls                   # a cell that closes its figure tests the plot, it does not show it
    if not closes and any(SHOWS.match(c) or c in plots for c in calls): return True   # a figure shows even after `;`
    last = stmts[-1]
    if not closes and isinstance(last, ast.Assign) and any(isinstance(t, ast.Name) and t.id in FIGURES for t in last.targets):
        return True                                                          # `ax = some_plot(...)`
    if not isinstance(last, ast.Expr) or body.rstrip().endswith(";"): return False
    if isinstance(last.value, ast.Call):
        name = _name(last.value.func)
        if name and QUIET.match(name.removeprefix("?.")): return False
    return True


def has_output(cell: dict) -> bool:
    "At least one output that is not a stderr stream."
    return any(not (o.get("output_type") == "stream" and o.get("name") == "stderr") for o in cell.get("outputs", []))


def missing_outputs(path: Path) -> list[tuple[int, str]]:
    "(cell index, first code line) of the demonstration cells of notebook `path` that have no saved output."
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    plots = plot_names(cells)
    out = []
    for i, c in enumerate(cells):
        if c.get("cell_type") != "code": continue
        src = _src(c)
        if is_demo(src, plots) and not has_output(c):
            first = next((ln for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith("#|")), "")
            out.append((i, first.strip()[:80]))
    return out


def error_outputs(path: Path) -> list[int]:
    "Indices of the cells whose saved outputs hold an error."
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return [i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]


def report(paths: list[Path]) -> list[str]:
    "One line per problem: `nbs/x.ipynb: cell 12 (`code`) has no output`."
    lines = []
    for p in paths:
        rel = Path(p).resolve().relative_to(ROOT) if Path(p).resolve().is_relative_to(ROOT) else p
        for i in error_outputs(p): lines.append(f"{rel}: cell {i} has an error in its saved output")
        for i, first in missing_outputs(p): lines.append(f"{rel}: cell {i} (`{first}`) has no saved output")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__); return 0
    if argv == ["--list"]:                                   # for scripts/run_notebooks.sh
        for p in rendered_notebooks(): print(p.relative_to(ROOT))
        return 0
    paths = [Path(a) for a in argv] or rendered_notebooks()
    lines = report(paths)
    for ln in lines: print(ln)
    bad = {ln.split(":")[0] for ln in lines}
    print(f"{len(paths) - len(bad)} of {len(paths)} notebooks have the outputs of all their demonstration cells"
          + (f"; run scripts/run_notebooks.sh {' '.join(sorted(bad))} and commit the notebooks" if bad else ""))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
