#!/usr/bin/env python
"""Strip run-to-run noise from the saved outputs of executed notebooks, so that re-running them changes nothing.

- progress bars: tqdm lines in stderr streams (`\\r` redraws, `42%|####  |`), and progress widgets;
- warnings in stderr streams (`file.py:12: UserWarning: ...` and the source line after it), and what optional
  dependencies print when imported (`_IMPORT_NOISE`); a stderr stream left empty is removed;
- absolute paths: those in the repository become relative to the notebook's folder, `$SCAML_DATA_DIR` and the home
  folder are written as such, temporary folders (`/tmp/tmpab12cd/...`) become `<tmp>/...`;
- memory addresses (`at 0x7f3a...`) become `at 0x...`;
- timings and other measured numbers: with `--previous OLD.ipynb`, a cell whose new outputs equal its old ones once
  durations (`12.3 s`, `450 ms`, `Wall time: ...`, `3.2 it/s`) and memory sizes (`375 MB`) are masked keeps its
  old outputs, so a re-run changes only the cells whose results changed.

Execution counts and metadata are left to `nbdev_clean`, which `scripts/execute_notebook.py` runs afterwards.

Usage: `python scripts/clean_outputs.py [--previous OLD.ipynb] NOTEBOOK.ipynb` (rewrites NOTEBOOK in place).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_TQDM = re.compile(r"\r|\d+%\|.*\||\d+(\.\d+)?(it/s|s/it)\]|\|\s*\d+/\d+\s*\[")
_WARNING = re.compile(r"^\S.*:\d+: \w*(Warning|Deprecation\w*): ")
# messages optional dependencies print on import (deepchem's list of what it could not load, rdkit's descriptors)
_IMPORT_NOISE = re.compile(r"^(Skipped loading .*missing a dependency|Skipped loading modules with|No normalization for \w+\. "
                           r"Feature removed!|cannot import name '\w+' from 'deepchem|.*IProgress not found)")
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{4,}\b")
_DURATION = re.compile(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?\s?(ns|µs|us|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hours?"
                       r"|it/s|s/it|[kMG]i?B|[kMG]B/s)\b|(Wall time|CPU times): [^\n]*")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else v


def _lines(s: str) -> list[str]:
    return s.splitlines(True)


def clean_stderr(text: str) -> str:
    "Drop progress bars and warnings from a stderr stream; what is left (log lines, messages) stays."
    out, skip_source = [], False
    for ln in text.splitlines(True):
        if skip_source and ln.startswith((" ", "\t")) and ln.strip():
            skip_source = False
            continue
        skip_source = False
        if _TQDM.search(ln.rstrip("\n")) or _IMPORT_NOISE.match(ln): continue
        if _WARNING.match(ln):
            skip_source = True
            continue
        out.append(ln)
    return "".join(out) if "".join(out).strip() else ""


def path_subs(nb_dir: Path) -> list[tuple[re.Pattern, object]]:
    "(pattern, replacement) for the absolute paths of this machine, longest first."
    nb_dir = Path(nb_dir).resolve()
    named = [(nb_dir, "."), (ROOT, os.path.relpath(ROOT, nb_dir) if nb_dir.is_relative_to(ROOT) else "<repo>")]
    data = os.environ.get("SCAML_DATA_DIR")
    if data: named += [(Path(os.path.abspath(data)), "$SCAML_DATA_DIR"), (Path(data).resolve(), "$SCAML_DATA_DIR")]
    named += [(Path(sys.prefix), "<venv>"), (Path.home(), "~")]
    subs = []
    for p, name in sorted(named, key=lambda x: -len(str(x[0]))):
        if len(p.parts) < 2: continue
        def rep(m, name=name): return ("" if name == "." else name + "/") if m.group(1) else name
        subs.append((re.compile(re.escape(str(p)) + r"(?:(/)|(?![\w.-]))"), rep))
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    subs.append((re.compile(rf"(/private)?{tmp}/[^\s'\"/<>)]+"), "<tmp>"))
    subs.append((re.compile(r"(/private)?/var/folders/[^\s'\"<>)]+?/T/[^\s'\"/<>)]+"), "<tmp>"))
    return subs


def clean_text(s: str, subs) -> str:
    for pat, rep in subs: s = pat.sub(rep, s)
    return _ADDRESS.sub("at 0x...", s)


def clean_cell_outputs(outputs: list[dict], subs) -> list[dict]:
    out = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            text = _text(o.get("text", ""))
            if o.get("name") == "stderr": text = clean_stderr(text)
            if not text: continue
            o["text"] = _lines(clean_text(text, subs))
        elif kind in ("display_data", "execute_result"):
            data = o.get("data", {})
            if _WIDGET in data: continue                       # a progress widget: no use on a static page
            for k in list(data):
                if k.startswith("text/"):
                    data[k] = _lines(clean_text(_text(data[k]), subs))
        elif kind == "error":
            o["traceback"] = [clean_text(t, subs) for t in o.get("traceback", [])]
            o["evalue"] = clean_text(o.get("evalue", ""), subs)
        out.append(o)
    return out


def _masked(outputs: list[dict]) -> str:
    "The outputs as text with the measured numbers masked, for comparison with the previous run."
    s = json.dumps([{k: v for k, v in o.items() if k not in ("execution_count", "metadata")} for o in outputs],
                   sort_keys=True)
    return _DURATION.sub("<t>", s)


def clean_notebook(path: Path, previous: Path | None = None) -> int:
    "Clean the outputs of notebook `path` in place; returns the number of cells that kept their previous outputs."
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    subs = path_subs(path.parent)
    old_cells = {}
    if previous and Path(previous).is_file():
        old = json.loads(Path(previous).read_text(encoding="utf-8"))
        old_cells = {_text(c.get("source", "")): c.get("outputs", []) for c in old["cells"] if c["cell_type"] == "code"}
    kept = 0
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        c["outputs"] = clean_cell_outputs(c.get("outputs", []), subs)
        prev = old_cells.get(_text(c.get("source", "")))
        if prev and prev != c["outputs"] and _masked(prev) == _masked(c["outputs"]):
            c["outputs"] = prev
            kept += 1
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--previous", type=Path, help="the notebook before it was executed: unchanged results keep its outputs")
    args = ap.parse_args(argv)
    kept = clean_notebook(args.notebook, args.previous)
    if kept: print(f"{args.notebook}: {kept} cells differ only in timings; kept their previous outputs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
