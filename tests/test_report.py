"""scaml_report on the real Tabula Muris FACS -> droplet task: both directions, executed notebooks and HTML."""
from __future__ import annotations

import json

import nbformat
import pytest

@pytest.fixture(scope="module")
def report(tmp_path_factory, data_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path
    out = tmp_path_factory.mktemp("report") / "reports"
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    exe = Path(sys.executable).parent / "scaml_report"
    p = subprocess.run([str(exe), "--dataset", "tm_facs_to_droplet", "--models", "lr", "--outdir", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, f"scaml_report exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return out, p

def test_both_directions(report):
    out, p = report
    assert sorted(d.name for d in out.iterdir()) == ["test_to_train", "train_to_test"]
    for name in ("train_to_test", "test_to_train"):
        assert f"{name}: " in p.stdout
        d = out / name
        assert sorted(f.name for f in d.iterdir()) == ["manifest.json", "report.html", "report.ipynb", "results"]
        man = json.loads((d / "results" / "manifest.json").read_text())
        train, test = name.split("_to_")
        assert man["split"]["train"] == [train] and man["split"]["test"] == [test]
        assert man["models"] == ["lr"] and man["n_train"] > 900 and man["n_test"] > 900
        assert (d / "results" / "lr_confusion_matrix.png").is_file()

@pytest.mark.parametrize("name", ["train_to_test", "test_to_train"])
def test_executed_notebook(report, name):
    out, _ = report
    nb = nbformat.read(out / name / "report.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "not every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "tm_facs_to_droplet" in injected[0].source
    train, test = name.split("_to_")
    assert f'train = ["{train}"]' in injected[0].source and f'test = ["{test}"]' in injected[0].source
    pngs = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert pngs >= 4, f"{pngs} figures"
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "5 cell types" in text

@pytest.mark.parametrize("name", ["train_to_test", "test_to_train"])
def test_html(report, name):
    out, _ = report
    html = (out / name / "report.html").read_text()
    assert html.count('<img') >= 4 and html.count("data:image/png;base64,") >= 4
    assert "Traceback" not in html and "Class balance per split" in html and "Where the models disagree" in html
    assert "In&nbsp;[" not in html

def test_refuses_to_overwrite(report, cli):
    out, _ = report
    before = {p: p.stat().st_mtime_ns for p in out.rglob("report.*")}
    p = cli("scaml_report", "--dataset", "tm_facs_to_droplet", "--models", "lr", "--outdir", out, check=False)
    assert p.returncode == 1
    assert "already exist" in p.stderr and "--overwrite" in p.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("report.*")} == before
    assert not list(out.glob(".*partial*"))
