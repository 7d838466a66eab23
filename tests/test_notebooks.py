"""The docs pages show the outputs saved in the notebooks: every demonstration cell of a rendered notebook must be
committed with its output (`scripts/run_notebooks.sh` refreshes them), and re-running a notebook must change
nothing but real results."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_outputs as co  # noqa: E402
import clean_outputs as cl  # noqa: E402

NOTEBOOKS = co.rendered_notebooks()


def test_which_notebooks_are_rendered():
    names = {str(p.relative_to(ROOT / "nbs")) for p in NOTEBOOKS}
    assert {"index.ipynb", "getting_started.ipynb", "gallery.ipynb", "08_models.ipynb"} <= names
    assert any(n.startswith("tutorials/") for n in names)
    assert not any(n.startswith(("analysis/", "_")) or "/_" in n for n in names)   # papermill notebooks, scratch


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "nbs")) for p in NOTEBOOKS])
def test_demonstration_cells_have_outputs(nb):
    problems = co.report([nb])
    assert not problems, ("committed without the outputs the docs page shows; run "
                          f"`scripts/run_notebooks.sh {nb.relative_to(ROOT)}` and commit it:\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("src", [
    "model = fit_logreg(ad); model",
    "res.summary",
    "print(f'{n} cells')",
    "ax = pl.confusion_matrix(cm)\nax.set_title('x');",
    "plots.model_comparison(res.summary);",
    "ax = model_comparison(summary)",
    "show_doc(CellTypeModel.fit)",
    "#| slow\nrun_benchmark(ad, models=['lr'])",
])
def test_demonstration_cells(src):
    assert co.is_demo(src)


@pytest.mark.parametrize("src", [
    "#| export\ndef f(): return 1",
    "#| exporti\nx = 1\nx",
    "#| hide\nres.summary",
    "#| eval: false\n! pip install scaml",
    "#|eval:false\nres",
    "#| gpu\nmodel.fit(ad)",
    "import os\nfrom scaml.models import annotate",
    "#| default_exp models",
    "x = compute(ad)",
    "test_eq(model.classes, ['A', 'B'])",
    "assert acc > 0.9",
    "res.summary;",
    "with expect_fail(KeyError, contains='available'): fit_logreg(ad, label_key='nope')",
    "plt.close('all')",
    "fig = plot_novelty(res.scores)\ntest_eq(len(fig.axes), 2)\nplt.close(fig)",          # tests the plot, closes it
    "%matplotlib inline",
    "",
])
def test_not_demonstration_cells(src):
    assert not co.is_demo(src)


def test_names_imported_from_plots_draw():
    cells = [{"cell_type": "code", "source": "from scaml.plots import per_class_f1, confusion_matrix as cmx"}]
    names = co.plot_names(cells)
    assert names == {"per_class_f1", "cmx"}
    assert co.is_demo("f = per_class_f1(table)\nn = 1", names) and not co.is_demo("f = table_of(t)\nn = 1", names)


def _nb(cells: list[tuple[str, list[dict]]]) -> dict:
    return {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": out,
                       "source": src} for i, (src, out) in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _stream(text: str, name: str = "stdout") -> dict:
    return {"name": name, "output_type": "stream", "text": text.splitlines(True)}


def test_missing_outputs_found(tmp_path):
    p = tmp_path / "page.ipynb"
    p.write_text(json.dumps(_nb([("import numpy as np", []), ("x = np.arange(3)\nx", []),
                                 ("print(1)", [_stream("1\n")]), ("y = 2\ny", [_stream("warn\n", "stderr")]),
                                 ("#| hide\nx", [])])))
    assert co.missing_outputs(p) == [(1, "x = np.arange(3)"), (3, "y = 2")]   # stderr alone is not a result
    assert co.main([str(p)]) == 1


def test_clean_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("SCAML_DATA_DIR", "/data/shared")
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    tqdm = "  0%|          | 0/3 [00:00<?, ?it/s]\r 67%|######6   | 2/3 [00:00<00:00, 12.1it/s]\r100%|##########| 3/3\n"
    warning = "/usr/lib/python3/site-packages/anndata/_core.py:42: FutureWarning: X is old\n  warnings.warn(msg)\n"
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": "HBox()"}}
    cells = [
        ("run()", [_stream(tqdm + warning + "INFO scaml: added 'scaml_pred'\n", "stderr"), widget,
                   _stream(f"wrote {nb_dir}/results/x.csv and /tmp/tmpab3_x9/model/meta.json\n"
                           f"read /data/shared/tm/x.h5ad in 1.25 s\n")]),
        ("m", [{"output_type": "execute_result", "execution_count": 3, "metadata": {},
                "data": {"text/plain": "<Model at 0x7f3a2b1c0d90>", "text/html": f"<b>{ROOT}/nbs/a.png</b>"}}]),
        ("loop()", [_stream(tqdm, "stderr")]),
    ]
    p = nb_dir / "page.ipynb"
    p.write_text(json.dumps(_nb(cells)))
    assert cl.clean_notebook(p) == 0
    out = [c["outputs"] for c in json.loads(p.read_text())["cells"]]
    assert out[0] == [_stream("INFO scaml: added 'scaml_pred'\n", "stderr"),
                      _stream("wrote results/x.csv and <tmp>/model/meta.json\nread $SCAML_DATA_DIR/tm/x.h5ad in 1.25 s\n")]
    assert "".join(out[1][0]["data"]["text/plain"]) == "<Model at 0x...>"
    assert str(ROOT) not in "".join(out[1][0]["data"]["text/html"])
    assert out[2] == []

    # a re-run whose results differ only in timings keeps the previous outputs; a changed result replaces them
    prev = tmp_path / "prev.ipynb"
    prev.write_text(p.read_text())
    rerun = _nb([("run()", [_stream(tqdm + "INFO scaml: added 'scaml_pred'\n", "stderr"),
                            _stream(f"wrote {nb_dir}/results/x.csv and /tmp/tmpzz/model/meta.json\n"
                                    "read /data/shared/tm/x.h5ad in 0.98 s\n")]),
                 ("m", [_stream("accuracy 0.95, fit in 3.1 s\n")])])
    p.write_text(json.dumps(rerun))
    assert cl.clean_notebook(p, previous=prev) == 1
    out = [c["outputs"] for c in json.loads(p.read_text())["cells"]]
    assert "1.25 s" in "".join(out[0][1]["text"])
    assert out[1] == [_stream("accuracy 0.95, fit in 3.1 s\n")]


def test_run_notebooks_refreshes_outputs_without_churn(tmp_path):
    "scripts/run_notebooks.sh executes a notebook in place; a second run leaves the file byte for byte the same."
    src = [
        "#| hide\n#| eval: false\nraise RuntimeError('eval: false cells do not run')",
        "import time\nimport warnings\nimport matplotlib.pyplot as plt\nimport pandas as pd\nfrom tqdm.auto import tqdm",
        "t0 = time.perf_counter()\nfor _ in tqdm(range(3)): time.sleep(0.01)\n"
        "warnings.warn('careful', UserWarning)\nprint(f'3 steps in {time.perf_counter() - t0:.4f} s')",
        "pd.DataFrame({'model': ['lr', 'rf'], 'f1': [0.9, 0.8]})",
        "fig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], [1, 0]);",
        "class Thing: pass\nThing()",
        "#| gpu\nraise RuntimeError('gpu cells do not run without SCAML_RUN_FLAGS=gpu')",
    ]
    p = tmp_path / "demo.ipynb"
    p.write_text(json.dumps(_nb([(s, []) for s in src])))
    env = {**os.environ, "SCAML_VENV": str(Path(sys.executable).parent.parent), "JOBS": "1"}
    run = lambda: subprocess.run([str(ROOT / "scripts" / "run_notebooks.sh"), str(p)], capture_output=True, text=True,  # noqa: E731
                                 env=env, timeout=300)
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    first = p.read_text()
    cells = json.loads(first)["cells"]
    out = [c["outputs"] for c in cells]
    assert out[0] == [] and out[1] == [] and out[6] == []
    assert [o["output_type"] for o in out[2]] == ["stream"] and out[2][0]["name"] == "stdout"   # no bar, no warning
    assert "<table" in "".join(out[3][0]["data"]["text/html"])
    assert "image/png" in out[4][0]["data"]
    assert "0x..." in "".join(out[5][0]["data"]["text/plain"])
    assert all(c["execution_count"] is None and c["metadata"] == {} for c in cells)
    assert co.missing_outputs(p) == []
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.read_text() == first

    # a failing cell leaves the notebook as it was, and the script fails
    bad = json.loads(first)
    bad["cells"][3]["source"] = "1 / 0"
    p.write_text(json.dumps(bad))
    before = p.read_text()
    r = run()
    assert r.returncode == 1 and "ZeroDivisionError" in r.stderr
    assert p.read_text() == before


# ------------------------------------------------------------------ notebooks as documents: short export cells
import cell_stats as cs  # noqa: E402

# the longest export cell a notebook may hold, in non-blank lines (directives included, as scripts/cell_stats.py
# counts them): a public function with a full numpydoc docstring fits, a listing of several ideas does not
MAX_EXPORT_LINES = 80
# notebooks not yet split into short cells, exempt from the two checks below (export cell size, first result);
# each leaves this list once its long cells are split, until the list is empty
LONG_CELLS_ALLOWED = {"15_benchmark"}


def test_cell_stats_counts_export_cells(tmp_path):
    p = tmp_path / "page.ipynb"
    p.write_text(json.dumps(_nb([("#| export\nimport os", []), ("#| export\ndef f():\n\n    return 1", []),
                                 ("#| exporti\nx = 1", []), ("f()", [_stream("1\n")]), ("#| export\ny = 2", [])])))
    assert [n for _, n, _ in cs.export_cells(p)] == [2, 3, 2, 2]        # blank lines are not counted
    assert cs.lines_to_first_output(p) == 8
    assert cs.stats(p) | {"notebook": None} == {"notebook": None, "export_cells": 4, "median": 2, "max": 3,
                                                 "to_first_output": 8}
    assert cs.main(["--over", "2", str(p)]) == 1 and cs.main(["--over", "3", str(p)]) == 0


def test_export_cells_are_short():
    "Each export cell holds one idea; a longer one is split (several cells, `@patch` for methods, named steps)."
    nbs = sorted((ROOT / "nbs").glob("*.ipynb"))
    assert nbs
    long = [f"{nb.name} cell {i}: {n} lines, {first}" for nb in nbs if nb.stem not in LONG_CELLS_ALLOWED
            for i, n, first in cs.export_cells(nb) if n > MAX_EXPORT_LINES]
    assert not long, (f"export cells over {MAX_EXPORT_LINES} lines (split them at their ideas; "
                      "`python scripts/cell_stats.py` shows every notebook):\n  " + "\n  ".join(long))
    assert LONG_CELLS_ALLOWED <= {nb.stem for nb in nbs}, "a notebook in LONG_CELLS_ALLOWED no longer exists"


MAX_LINES_TO_FIRST_OUTPUT = 100


def test_first_result_comes_early():
    "A page shows a result within its first 100 lines of code (a small example right after the first definitions)."
    late = []
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        n = cs.lines_to_first_output(nb)
        if nb.stem not in LONG_CELLS_ALLOWED and n is not None and n > MAX_LINES_TO_FIRST_OUTPUT:
            late.append(f"{nb.name}: first output after {n} lines of code")
    assert not late, "\n  ".join(["pages whose first result comes late:", *late])
