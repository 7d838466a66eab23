#!/usr/bin/env python
"""How each notebook in nbs/ reads as a document: the size of its export cells and how much code comes before its
first result.

For every notebook it prints the number of export cells (`#| export`, `exporti`, `exports`), the median and largest
number of lines in one (non-blank lines, directives included), the largest cell's position, and the non-blank lines
of code in the code cells up to and including the first one with a saved output ("to first output"; "-" when the
notebook has no saved output).

Usage: `python scripts/cell_stats.py [NOTEBOOK ...]` (default: every nbs/*.ipynb); `--over N` lists the export
cells longer than N lines instead, one `notebook:cell  lines  first line` row each, and exits 1 if there are any.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORT = re.compile(r"^#\|\s*export[is]?\s*$")


def _lines(cell: dict) -> list[str]:
    src = cell["source"]
    return [ln for ln in ("".join(src) if isinstance(src, list) else src).splitlines() if ln.strip()]


def is_export(cell: dict) -> bool:
    "A code cell with an `export`, `exporti` or `exports` directive."
    return cell["cell_type"] == "code" and any(EXPORT.match(ln.strip()) for ln in _lines(cell))


def export_cells(nb: Path) -> list[tuple[int, int, str]]:
    "(cell index, non-blank lines, first line of code) of each export cell of `nb`."
    cells = json.loads(nb.read_text())["cells"]
    out = []
    for i, c in enumerate(cells):
        if is_export(c):
            code = [ln for ln in _lines(c) if not ln.startswith("#|")]
            out.append((i, len(_lines(c)), code[0].strip() if code else ""))
    return out


def lines_to_first_output(nb: Path) -> int | None:
    "Non-blank lines of code in the code cells up to and including the first with a saved output."
    n = 0
    for c in json.loads(nb.read_text())["cells"]:
        if c["cell_type"] != "code": continue
        n += len(_lines(c))
        if c.get("outputs"): return n
    return None


def stats(nb: Path) -> dict:
    sizes = [n for _, n, _ in export_cells(nb)]
    return {"notebook": nb.name, "export_cells": len(sizes),
            "median": statistics.median(sizes) if sizes else 0, "max": max(sizes, default=0),
            "to_first_output": lines_to_first_output(nb)}


def main(argv: list[str]) -> int:
    over = None
    if argv[:1] == ["--over"]: over, argv = int(argv[1]), argv[2:]
    nbs = [Path(a) for a in argv] or sorted((ROOT / "nbs").glob("*.ipynb"))
    if over is not None:
        rows = [f"{nb.name}:{i}  {n}  {first}" for nb in nbs for i, n, first in export_cells(nb) if n > over]
        print("\n".join(rows) or f"no export cell over {over} lines")
        return 1 if rows else 0
    print(f"{'notebook':28} {'cells':>5} {'median':>6} {'max':>4} {'to first output':>15}")
    allsizes = []
    for nb in nbs:
        s = stats(nb)
        allsizes += [n for _, n, _ in export_cells(nb)]
        tfo = "-" if s["to_first_output"] is None else s["to_first_output"]
        print(f"{s['notebook']:28} {s['export_cells']:5} {s['median']:6g} {s['max']:4} {tfo:>15}")
    if allsizes:
        print(f"{'all':28} {len(allsizes):5} {statistics.median(allsizes):6g} {max(allsizes):4}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
