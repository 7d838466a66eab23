"""The models that travel (singler, knn) and the majority vote, end to end on a real cross-technology task."""
from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest

TRAVEL = ["singler", "knn"]

@pytest.fixture(scope="module")
def task(data_dir):
    import os
    os.environ.setdefault("SCAML_DATA_DIR", str(data_dir))
    from scaml.datasets import load_task
    return load_task("tm_facs_to_droplet")

@pytest.fixture(scope="module")
def trained(tmp_path_factory, task, data_dir):
    "scaml_train with lr, singler and knn and --majority-vote on Tabula Muris FACS -> droplet, and the test cells."
    import os
    import subprocess
    import sys
    from pathlib import Path
    tmp = tmp_path_factory.mktemp("travel")
    out, cells = tmp / "run", tmp / "test_cells.h5ad"
    task[task.obs.split == "test"].copy().write_h5ad(cells)
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    p = subprocess.run([str(Path(sys.executable).parent / "scaml_train"), "--dataset", "tm_facs_to_droplet",
                        "--models", "lr", *TRAVEL, "--majority-vote", "--no-plots", "--outdir", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    return out, cells

def test_results_hold_each_model_and_its_vote(trained):
    out, _ = trained
    summary = json.loads((out / "summary_metrics.json").read_text())
    assert list(summary) == ["lr", "singler", "knn", "lr+vote", "singler+vote", "knn+vote"]
    for m in TRAVEL:
        assert summary[m]["f1_macro"] >= 0.85, (m, summary[m]["f1_macro"])      # 0.93 / 0.92 measured
        files = sorted(f.name for f in (out / m / "model").iterdir())
        assert files == sorted(["meta.json", "preprocess.json", f"{m}.npz"])    # arrays and JSON, no pickle
        assert not (out / f"{m}+vote" / "model").exists()                       # the vote saves nothing of its own
        pred = pd.read_csv(out / f"{m}+vote" / "predictions.csv", index_col="cell")
        assert len(pred) == 1000
    manifest = json.loads((out / "manifest.json").read_text())
    mv = manifest["majority_vote"]
    assert mv["method"] == "kmeans" and mv["n_clusters"] == 33
    assert set(mv["n_relabelled"]) == {"lr", *TRAVEL}
    assert summary["lr+vote"]["n_relabelled"] == mv["n_relabelled"]["lr"]

@pytest.mark.parametrize("model", TRAVEL)
def test_load_and_predict_give_the_benchmark_calls(trained, cli, tmp_path, model):
    """A saved model, loaded, predicts exactly what the run reported; scaml_predict --majority-vote, the vote too."""
    from scaml.models import CellTypeModel
    out, cells = trained
    m = CellTypeModel.load(out / model / "model")
    run = pd.read_csv(out / model / "predictions.csv", index_col="cell")
    proba = pd.read_csv(out / model / "proba.csv", index_col="cell")
    p = m.predict_proba(anndata.read_h5ad(cells))
    assert (np.asarray(m.classes_)[p.to_numpy().argmax(1)] == run.y_pred.to_numpy()).all()
    assert np.allclose(p.to_numpy(), proba.to_numpy(), atol=2e-6)
    cli("scaml_predict", "--model", out / model / "model", "--adata", cells, "--out", tmp_path / "p.csv",
        "--majority-vote", "--h5ad-out", tmp_path / "a.h5ad")
    pred = pd.read_csv(tmp_path / "p.csv", index_col="cell")
    assert list(pred.columns[:4]) == ["label", "confidence", "label_vote", "cluster"]
    assert (pred.label == run.y_pred).all()
    voted = pd.read_csv(out / f"{model}+vote" / "predictions.csv", index_col="cell")
    assert (pred.label_vote == voted.y_pred).all()                  # the same clusters and the same vote
    a = anndata.read_h5ad(tmp_path / "a.h5ad")
    assert {"scaml_pred", "scaml_pred_vote", "scaml_cluster"} <= set(a.obs.columns)

def test_engines_refuse_them_before_reading(task, tmp_path):
    from scaml.benchmark import run_benchmark
    path = tmp_path / "task.h5ad"
    task.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    kw = dict(label_key="label", split_key="split", train="train", test="test", progress=False)
    for engine in ("streaming", "out-of-core"):
        with pytest.raises(ValueError, match=f"singler keep every training cell.*the {engine} engine"):
            run_benchmark(backed, models=["lr", "singler"], engine=engine, **kw)
        with pytest.raises(ValueError, match=f"majority_vote=True clusters all test cells.*the {engine} engine"):
            run_benchmark(backed, models=["lr"], engine=engine, majority_vote=True, **kw)
    with pytest.raises(ValueError, match="knn keep every training cell.*the dask engine"):
        run_benchmark(task, models=["knn"], engine="dask", client=object(), **kw)     # refused before the client is used

def test_cli_refuses_them_before_reading(cli, tmp_path):
    missing = tmp_path / "not_there.h5ad"           # the refusal comes first: the file is never opened
    p = cli("scaml_train", "--adata", missing, "--backed", "--models", "lr", "knn", "--split-key", "batch",
            "--split-train", "a", "--outdir", tmp_path / "o", check=False)
    assert p.returncode == 1 and "--models knn keep every training cell" in p.stderr and "not_there" not in p.stderr
    p = cli("scaml_train", "--adata", missing, "--engine", "out-of-core", "--majority-vote", "--split-key", "batch",
            "--split-train", "a", "--outdir", tmp_path / "o", check=False)
    assert p.returncode == 1 and "--majority-vote clusters all test cells" in p.stderr
    assert not (tmp_path / "o").exists()

def test_vote_guard_keeps_a_rare_type(trained):
    """12 cells called NK and 3 called granulocytes inside one cluster of all test cells (the worst case): the guard
    keeps the group of 12 and votes the 3 scattered calls away; without the guard both types are voted away."""
    from scaml.travel import majority_vote
    out, _ = trained
    proba = pd.read_csv(out / "singler" / "proba.csv", index_col="cell")
    lab = proba.to_numpy().argmax(1)
    nk, gr = list(proba.columns).index("NK cell"), list(proba.columns).index("Granulocyte")
    keep = np.sort(np.concatenate([np.flatnonzero((lab != nk) & (lab != gr)), np.flatnonzero(lab == nk)[:12],
                                   np.flatnonzero(lab == gr)[:3]]))
    P, one = proba.to_numpy()[keep], np.zeros(len(keep), int)
    assert (P.argmax(1) == nk).sum() == 12 and (P.argmax(1) == gr).sum() == 3
    Pv, changed = majority_vote(P, one, min_majority=0.3)
    assert (Pv.argmax(1) == nk).sum() == 12 and (Pv.argmax(1) == gr).sum() == 0 and changed.sum() == 3
    Pu, _ = majority_vote(P, one, min_majority=0.3, keep_share=1.0, keep_cells=len(P))      # the guard off
    assert (Pu.argmax(1) == nk).sum() == 0
