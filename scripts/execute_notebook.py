#!/usr/bin/env python
"""Execute one notebook in place, as `nbdev_test` runs it, and keep its outputs (used by scripts/run_notebooks.sh).

Runs from the notebook's folder with nbdev's execnb. Cells marked `#| eval: false` are skipped (they keep no
output), and so are cells flagged with one of settings.ini's `tst_flags` that is not in `SCAML_RUN_FLAGS`
(default `slow`: the slow cells run, the `gpu` and `download` cells keep what they had). Figures are saved as PNG.
The notebook is written only if every cell ran; then `clean_outputs.py` strips the run-to-run noise, comparing with
the notebook as it was, and `nbdev_clean` the execution counts and metadata.

Usage: `python scripts/execute_notebook.py NOTEBOOK.ipynb`; exits 1 (notebook unchanged) when a cell raises.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_outputs import ROOT, UNEXECUTED, directives  # noqa: E402
from clean_outputs import clean_notebook  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__); return 2
    path = Path(argv[0]).resolve()
    if path.is_relative_to(ROOT / "nbs") and path.relative_to(ROOT / "nbs").parts[0] in UNEXECUTED:
        print(f"{argv[0]}: analysis notebooks are run with papermill and committed without outputs", file=sys.stderr)
        return 1
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    flags = set(cfg["DEFAULT"].get("tst_flags", "").split()) - set(os.environ.get("SCAML_RUN_FLAGS", "slow").split())

    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell

    def skip(cell) -> bool:
        if cell.cell_type != "code": return True
        d = directives(cell.source)
        if "eval:false" in d:
            cell.outputs = []
            return True
        return bool(d & flags)

    nb = read_nb(path)
    t0 = time.perf_counter()
    os.chdir(path.parent)
    shell = CaptureShell(path.parent, mpl_format="png")
    shell._fname = path
    # pandas formats text as in Jupyter (at most 20 columns, wrapped at 80 characters), not to a terminal's width
    shell.run_cell("import pandas as _pd; _pd.set_option('display.max_columns', 20); _pd.set_option('display.width', 80); del _pd")
    try:
        shell.run_all(nb, exc_stop=True, preproc=skip)
    except Exception:
        print(shell.prettytb(fname=argv[0]), file=sys.stderr)
        print(f"FAIL {argv[0]}: a cell raised; the notebook is unchanged", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        previous = Path(d) / path.name
        shutil.copy(path, previous)
        write_nb(nb, path)
        clean_notebook(path, previous=previous)
    # execution counts and metadata, as the commit hook and scripts/test.sh expect
    nbdev_clean = shutil.which("nbdev_clean", path=str(Path(sys.executable).parent)) or "nbdev_clean"
    subprocess.run([nbdev_clean, "--fname", str(path)], cwd=ROOT, check=True)
    print(f"ok   {argv[0]} ({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
