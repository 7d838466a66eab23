"""The command line end to end on real data, through the installed console scripts."""
from __future__ import annotations

import json
import subprocess
import sys

import anndata
import numpy as np
import pandas as pd
import pytest

MODELS = ["lr", "rf", "xgb", "mlp"]
NO_CHECKER = "the original SCAML's layout checker (../shared/compat/check_seed_layout.py) is not beside this clone"

@pytest.fixture(scope="module")
def facs_to_droplet(tmp_path_factory, data_dir):
    "One full run of the default task with the four default models, shared by the tests below."
    import os
    out = tmp_path_factory.mktemp("runs") / "tm_facs_to_droplet"
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    p = subprocess.run([sys.executable, "-m", "scaml.cli", "train", "--dataset", "tm_facs_to_droplet", "--models", *MODELS,
                        "--outdir", str(out), "--quiet"], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    return out, p

def test_results_folder_is_complete(facs_to_droplet):
    out, p = facs_to_droplet
    for f in ["summary_metrics.json", "classes.txt", "features.txt", "manifest.json", "model_compare.png",
              "per_class_f1.png"]:
        assert (out / f).is_file(), f
    classes = [ln.split("\t")[1] for ln in (out / "classes.txt").read_text().splitlines()]
    assert classes == ["B cell", "Granulocyte", "Monocyte", "NK cell", "T cell"]
    assert len((out / "features.txt").read_text().splitlines()) == 1000   # the default 1,000 HVGs of 1,685 shared genes
    summary = json.loads((out / "summary_metrics.json").read_text())
    assert set(summary) == set(MODELS)
    for m in MODELS:
        d = out / m
        for f in ["metrics.json", "classification_report.txt", "confusion_matrix.csv", "per_class.csv",
                  "predictions.csv", "proba.csv", "model/meta.json"]:
            assert (d / f).is_file(), f"{m}/{f}"
        assert (out / f"{m}_confusion_matrix.png").stat().st_size > 10_000
        metrics = json.loads((d / "metrics.json").read_text())
        for k in ["accuracy", "balanced_accuracy", "f1_macro", "f1_macro_seen", "f1_median", "roc_auc_macro_ovr"]:
            assert 0 <= metrics[k] <= 1, (m, k)
        pred = pd.read_csv(d / "predictions.csv", index_col="cell")
        assert list(pred.columns) == ["y_true", "y_pred", "y_true_idx", "y_pred_idx", "max_proba"]
        assert len(pred) == 1000 and set(pred.y_true) <= set(classes)
        assert np.isclose(metrics["accuracy"], (pred.y_true == pred.y_pred).mean())
        proba = pd.read_csv(d / "proba.csv", index_col="cell")
        assert list(proba.columns) == classes and np.allclose(proba.sum(1), 1, atol=1e-4)
        assert (proba.index == pred.index).all()
        cm = pd.read_csv(d / "confusion_matrix.csv", index_col=0)
        assert list(cm.index) == classes and list(cm.columns) == classes and cm.to_numpy().sum() == 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_train"] == 1957 and manifest["n_test"] == 1000
    assert manifest["gene_overlap"]["n_missing"] == 0 and "timings" in manifest and "versions" in manifest

def test_original_scaml_tools_read_the_cli_folder(facs_to_droplet, seed_layout):
    p = seed_layout(facs_to_droplet[0])
    if p is None: pytest.skip(NO_CHECKER)
    assert p.returncode == 0, p.stdout

def test_original_scaml_tools_read_the_api_folder(data_dir, tmp_path, seed_layout):
    from scaml import load_task, run_benchmark
    res = run_benchmark(load_task("cellbench_celseq2_to_dropseq", data_dir=data_dir), label_key="label",
                        split_key="split", train="train", test="test", models=["lr", "mlp"], outdir=tmp_path / "api",
                        plots=False, progress=False)
    p = seed_layout(res.outdir)
    if p is not None: assert p.returncode == 0, p.stdout
    summary = json.loads((res.outdir / "summary_metrics.json").read_text())
    assert list(summary) == ["lr", "mlp"]                       # one entry per model, nothing else at the top level
    assert json.loads((res.outdir / "manifest.json").read_text())["classes"] == res.classes

def test_the_checker_refuses_the_old_layout(facs_to_droplet, tmp_path, seed_layout):
    "The layout check can fail: the 0.1 nesting of summary_metrics.json is not readable by the original tools."
    import shutil
    bad = tmp_path / "old"
    shutil.copytree(facs_to_droplet[0], bad)
    s = json.loads((bad / "summary_metrics.json").read_text())
    (bad / "summary_metrics.json").write_text(json.dumps({"models": s, "classes": ["x"]}))
    p = seed_layout(bad)
    if p is None: pytest.skip(NO_CHECKER)
    assert p.returncode == 1

def test_models_generalise_across_technologies(facs_to_droplet):
    out, _ = facs_to_droplet
    summary = json.loads((out / "summary_metrics.json").read_text())
    assert max(m["f1_macro"] for m in summary.values()) >= 0.9
    assert summary["lr"]["accuracy"] >= 0.93

def test_predict_with_saved_model_on_the_raw_droplet_file(facs_to_droplet, cli, data_dir, tmp_path):
    """The saved model applies its own preprocessing and gene alignment to a file with 19k genes."""
    out, _ = facs_to_droplet
    src = data_dir / "actinn_tm_droplet" / "actinn_tm_droplet.h5ad"
    p = cli("scaml_predict", "--model", out / "lr" / "model", "--adata", src, "--out", tmp_path / "p.csv",
            "--h5ad-out", tmp_path / "annotated.h5ad")
    pred = pd.read_csv(tmp_path / "p.csv", index_col="cell")
    truth = anndata.read_h5ad(src).obs["cell_type"].astype(str)
    run = pd.read_csv(out / "lr" / "predictions.csv", index_col="cell")
    assert (pred.label == truth.loc[pred.index]).mean() >= 0.93
    # genes the training cells lacked stay out of the library sizes: the benchmark's calls exactly
    assert (pred.label.loc[run.index] == run.y_pred).all()
    a = anndata.read_h5ad(tmp_path / "annotated.h5ad")
    assert {"scaml_pred", "scaml_conf"} <= set(a.obs.columns) and a.obsm["scaml_proba"].shape == (1000, 5)
    assert "predictions:" in p.stdout
    again = cli("scaml_predict", "--model", out / "lr" / "model", "--adata", src, "--out", tmp_path / "p.csv", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr

def test_predict_reproduces_the_benchmark_calls(facs_to_droplet, cli, data_dir, tmp_path, monkeypatch):
    """The same test cells through scaml_predict give exactly the benchmark's predictions and probabilities."""
    from scaml.datasets import load_task
    out, _ = facs_to_droplet
    monkeypatch.setenv("SCAML_DATA_DIR", str(data_dir))
    task = load_task("tm_facs_to_droplet")
    task[task.obs.split == "test"].copy().write_h5ad(tmp_path / "test_cells.h5ad")
    for m in ["lr", "xgb"]:
        cli("scaml_predict", "--model", out / m / "model", "--adata", tmp_path / "test_cells.h5ad", "--out", tmp_path / f"{m}.csv")
        pred = pd.read_csv(tmp_path / f"{m}.csv", index_col="cell")
        run = pd.read_csv(out / m / "predictions.csv", index_col="cell")
        proba = pd.read_csv(out / m / "proba.csv", index_col="cell")
        assert (pred.label == run.y_pred).all()
        assert np.allclose(pred.filter(like="proba_").to_numpy(), proba.to_numpy(), atol=2e-6)

def test_plot_redraws_figures(facs_to_droplet, cli, tmp_path):
    out, _ = facs_to_droplet
    cli("scaml_plot", "--results", out, "--outdir", tmp_path)
    assert (tmp_path / "model_compare.png").stat().st_size > 10_000
    assert len(list(tmp_path.glob("*_confusion_matrix.png"))) == 4

def test_two_files_with_different_class_sets(cli, data_dir, tmp_path):
    """Train on all 12 FACS types, test on the 5 droplet types: one label encoding, genes matched by name."""
    facs = data_dir / "deepchem_actinn_tm_facs" / "deepchem_actinn_tm_facs.h5ad"
    drop = data_dir / "actinn_tm_droplet" / "actinn_tm_droplet.h5ad"
    cli("scaml_train", "--adata", facs, "--adata-test", drop, "--label-key", "cell_type", "--models", "lr",
        "--outdir", tmp_path / "o", "--no-plots", "--quiet")
    classes = (tmp_path / "o" / "classes.txt").read_text().splitlines()
    assert len(classes) == 12
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["gene_overlap"]["n_missing"] > 0        # FACS genes absent from the droplet file are reported
    m = json.loads((tmp_path / "o" / "lr" / "metrics.json").read_text())
    assert m["n_test_unseen"] == 0 and m["accuracy"] > 0.8

def test_reruns_are_byte_identical(cli, tmp_path):
    for run in ("a", "b"):
        cli("scaml_train", "--dataset", "cellbench_celseq2_to_dropseq", "--models", *MODELS, "--seed", "3",
            "--outdir", tmp_path / run, "--no-plots", "--quiet")
    for m in MODELS:
        for f in ["predictions.csv", "proba.csv", "metrics.json", "confusion_matrix.csv"]:
            assert (tmp_path / "a" / m / f).read_bytes() == (tmp_path / "b" / m / f).read_bytes(), f"{m}/{f}"

def test_clear_errors(cli, data_dir, tmp_path):
    facs = data_dir / "deepchem_actinn_tm_facs" / "deepchem_actinn_tm_facs.h5ad"
    p = cli("scaml_train", "--adata", facs, "--label-key", "celltype", "--split-key", "split", "--split-train", "train",
            "--outdir", tmp_path / "o", check=False)
    assert p.returncode == 1 and "label_key='celltype' is not a column" in p.stderr and "'cell_type'" in p.stderr
    assert "Traceback" not in p.stderr
    p = cli("scaml_train", "--adata", facs, "--split-key", "split", "--split-train", "H4", "--outdir", tmp_path / "o",
            check=False)
    assert p.returncode == 1 and "values there: 'test', 'train'" in p.stderr
    p = cli("scaml_train", "--adata", facs, "--split-key", "split", "--split-train", "train", "--models", "lr", "svm",
            "--outdir", tmp_path / "o", check=False)
    assert p.returncode == 1 and "unknown model(s) ['svm']" in p.stderr
    assert not (tmp_path / "o").exists()

def test_import_is_cheap():
    code = "import sys, scaml; bad = [m for m in ('torch', 'anndata', 'sklearn', 'xgboost', 'scanpy', 'deepchem', " \
           "'matplotlib') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)
