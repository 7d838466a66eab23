"""Reliability, round 3: hostile inputs to the features of the last round that gave silent wrong answers.

Each numbered case of the issue is a test below (named test_<case>_...). The console entry points are called
in-process (the functions the console scripts call) unless a signal must reach a real process.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scaml.cli import scaml_novelty, scaml_plot, scaml_predict, scaml_report, scaml_train
from scaml.models import CellTypeModel
from conftest import assert_error

FACS = "deepchem_actinn_tm_facs/deepchem_actinn_tm_facs.h5ad"    # 5,000 Smart-seq2 cells, read counts, 12 types
KEY = ["--label-key", "cell_type", "--split-key", "split", "--split-train", "train", "--split-test", "test"]
LR = ["--models", "lr", "--n-top-genes", "500", "--no-plots", "--no-save-models"]

# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def facs(data_dir) -> anndata.AnnData:
    return anndata.read_h5ad(data_dir / FACS)

@pytest.fixture
def write(tmp_path):
    def w(a: anndata.AnnData, name: str) -> Path:
        p = tmp_path / f"{name}.h5ad"
        a.write_h5ad(p)
        return p
    return w

def run(capsys, f, *argv) -> tuple[int, str]:
    "Call an entry point in-process; returns (exit status, stderr)."
    capsys.readouterr()
    code = f([str(a) for a in argv])
    return code, capsys.readouterr().err

def warnings_of(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning: ")]

def one_warning(err: str, *phrases: str) -> str:
    hits = [w for w in warnings_of(err) if all(p in w for p in phrases)]
    assert len(hits) == 1, (phrases, err)
    return hits[0]

def mean_confidence(folder: Path, model: str = "lr") -> float:
    return float(pd.read_csv(folder / model / "proba.csv", index_col=0).to_numpy().max(1).mean())

# ------------------------------------------------------------------ 1. calibration with a class in one group
def test_1_calibration_group_key_label_falls_back_to_stratified(capsys, data_dir, tmp_path):
    "--group-key cell_type: every class sits in one group, so no grouped fold's model saw its held-out cells."
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--calibrate", "temperature",
                    "--group-key", "cell_type", "--outdir", tmp_path / "r")
    assert code == 0, err
    w = one_warning(err, "--group-key", "one group")
    assert "B cell" in w and "stratified" in w, w
    summary = json.loads((tmp_path / "r" / "summary_metrics.json").read_text())
    assert summary["lr"]["temperature"] < 10, summary["lr"]["temperature"]       # not run to its bound (50)
    assert mean_confidence(tmp_path / "r") > 0.8
    assert summary["lr"]["ece"] < 0.1, summary["lr"]["ece"]
    cal = json.loads((tmp_path / "r" / "manifest.json").read_text())["calibration"]["models"]["lr"]
    assert "stratified" in cal["kind"], cal

def test_1_calibration_plates_names_the_one_plate_classes(capsys, facs, write, tmp_path):
    "FACS plates that each hold one sorted type: those classes are named, and the calibration stays sane."
    a = facs.copy()
    rng = np.random.default_rng(0)
    plate = rng.choice(["P1", "P2", "P3", "P4"], a.n_obs)
    plate[a.obs.cell_type.to_numpy() == "Hepatocyte"] = "P5"
    plate[a.obs.cell_type.to_numpy() == "Cardiac Muscle"] = "P6"
    a.obs["plate"] = pd.Categorical(plate)
    code, err = run(capsys, scaml_train, "--adata", write(a, "plates"), *KEY, *LR, "--calibrate", "temperature",
                    "--group-key", "plate", "--outdir", tmp_path / "r")
    assert code == 0, err
    w = one_warning(err, "--group-key", "one group")
    assert "Cardiac Muscle" in w and "Hepatocyte" in w and "B cell" not in w, w
    summary = json.loads((tmp_path / "r" / "summary_metrics.json").read_text())
    assert summary["lr"]["temperature"] < 10 and mean_confidence(tmp_path / "r") > 0.8

def test_1_temperature_at_its_bound_warns():
    from scaml.calibration import TemperatureScaler
    rng = np.random.default_rng(0)
    P = np.full((300, 3), 0.001); P[np.arange(300), rng.integers(0, 3, 300)] = 0.998
    y = rng.integers(0, 3, 300)                                      # confident and right only by chance
    with pytest.warns(UserWarning, match="at the bound"):
        t = TemperatureScaler().fit(P, y)
    assert t.temperature_ > 40

# ------------------------------------------------------------------ 2. save(overwrite=True) over a model folder
def test_2_save_overwrite_replaces_the_old_files(facs, tmp_path):
    from scaml.calibration import TemperatureScaler
    from scaml.preprocess import Preprocessor
    tr = facs[facs.obs.split == "train"]
    m = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=300)).fit(tr)
    cal = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=300)).fit(tr)
    cal.calibrator = TemperatureScaler(); cal.calibrator.temperature_, cal.calibrator.n_fit_ = 5.0, 10
    cal.save(tmp_path / "m")
    assert (tmp_path / "m" / "calibration.json").is_file()
    m.save(tmp_path / "m", overwrite=True)
    assert not (tmp_path / "m" / "calibration.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]                  # written aside and swapped in: no leftovers
    back = CellTypeModel.load(tmp_path / "m")
    assert back.calibrator is None
    te = facs[facs.obs.split == "test"][:200]
    np.testing.assert_allclose(back.predict_proba(te).to_numpy(), m.predict_proba(te).to_numpy(), atol=1e-6)
    # a folder that holds files of its own is not deleted
    (tmp_path / "mine").mkdir(); (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        m.save(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"

# ------------------------------------------------------------------ 3. a declared input scale against the values
@pytest.mark.parametrize("declared", ["log1p", "log2", "scaled"])
def test_3_counts_declared_otherwise(capsys, data_dir, tmp_path, declared):
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--input-scale", declared,
                    "--outdir", tmp_path / "r")
    assert_error(code, err, f"--input-scale {declared}", "look like counts", "--trust-input-scale")
    assert not (tmp_path / "r").exists()

def test_3_log1p_declared_counts(capsys, facs, write, tmp_path):
    from scaml.input_scale import normalize_log1p
    a = facs.copy(); a.X = normalize_log1p(a.X)
    code, err = run(capsys, scaml_train, "--adata", write(a, "log"), *KEY, *LR, "--input-scale", "counts",
                    "--outdir", tmp_path / "r")
    assert_error(code, err, "--input-scale counts", "look like log")
    code, err = run(capsys, scaml_train, "--adata", write(a, "log"), *KEY, *LR, "--input-scale", "counts",
                    "--trust-input-scale", "--outdir", tmp_path / "r")
    assert code == 0, err
    one_warning(err, "--input-scale counts", "look like log")

def test_3_api_declared_scale(facs):
    from scaml.preprocess import Preprocessor
    with pytest.raises(ValueError, match=r"input_scale='log1p'.*look like counts"):
        Preprocessor(input_scale="log1p", n_top_genes=100).fit(facs)
    from scaml.input_scale import normalize_log1p
    logged = facs.copy(); logged.X = normalize_log1p(logged.X)
    with pytest.raises(ValueError, match=r"input_scale='counts'.*look like log"):
        Preprocessor(input_scale="counts", n_top_genes=100).fit(logged)
    with pytest.warns(UserWarning, match="look like log"):
        Preprocessor(input_scale="counts", n_top_genes=100, trust_input_scale=True).fit(logged)
    Preprocessor(input_scale="counts", n_top_genes=100).fit(facs)                # agrees: no error

# ------------------------------------------------------------------ 4. Dask refuses --calibrate as out-of-core does
def test_4_dask_refuses_calibrate_before_reading(capsys, tmp_path):
    missing = tmp_path / "not_read.h5ad"                              # the refusal comes before any data is read
    code, err = run(capsys, scaml_train, "--adata", missing, *KEY, *LR, "--calibrate", "temperature",
                    "--dask-workers", "1", "--outdir", tmp_path / "r")
    dask = assert_error(code, err, "--calibrate temperature", "dask engine (a Dask cluster)", "--calibrate none")
    code, err = run(capsys, scaml_train, "--adata", missing, *KEY, *LR, "--calibrate", "temperature", "--backed",
                    "--engine", "out-of-core", "--outdir", tmp_path / "r")
    ooc = assert_error(code, err, "--calibrate temperature", "out-of-core", "--calibrate none")
    assert "calibrate=None" not in dask + ooc
    same = "--calibrate temperature refits each model on folds of the training cells in memory, which"
    assert same in dask and same in ooc

def test_4_api_dask_refuses_calibrate():
    from scaml.benchmark import run_benchmark
    from scaml.data import toy_adata
    ad = toy_adata(n_obs=120, n_vars=60, n_classes=3)
    with pytest.raises(ValueError, match="calibrate='temperature'.*dask"):
        run_benchmark(ad, split_key="batch", train="b0", models=["lr"], calibrate="temperature", client=object())

# ------------------------------------------------------------------ 7. scaml_plot and the results folder's files
@pytest.fixture(scope="module")
def facs_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run") / "r"
    assert scaml_train(["--adata", str(data_dir / FACS), *KEY, "--models", "lr", "--n-top-genes", "300",
                        "--outdir", str(out), "--quiet"]) == 0
    return out

def test_7_plot_records_its_files_and_overwrite_accepts_them(capsys, data_dir, tmp_path, facs_run):
    import shutil
    r = tmp_path / "r"; shutil.copytree(facs_run, r)
    code, err = run(capsys, scaml_plot, "--results", r)
    assert code == 0, err
    files = json.loads((r / "manifest.json").read_text())["files"]
    assert "metrics_ci.png" in files and "reliability.png" in files
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--outdir", r, "--overwrite")
    assert code == 0, err

def test_7_plot_outdir_keeps_a_users_reliability_png(capsys, tmp_path, facs_run):
    d = tmp_path / "figs"; d.mkdir(); (d / "reliability.png").write_bytes(b"mine")
    code, err = run(capsys, scaml_plot, "--results", facs_run, "--outdir", d)
    assert_error(code, err, "reliability.png", "--overwrite")
    assert (d / "reliability.png").read_bytes() == b"mine"

# ------------------------------------------------------------------ 8. scaml_novelty --reject --model FOLDER
def test_8_reject_uses_the_saved_model(capsys, facs, write, tmp_path):
    from scaml.preprocess import Preprocessor
    a = facs.copy()
    a.obs["novel"] = (a.obs.cell_type == "Hepatocyte").astype(str)
    tr = a[(a.obs.split == "train") & (a.obs.novel == "False")]
    saved = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=150), C=0.01).fit(tr)
    saved.save(tmp_path / "model")
    code, err = run(capsys, scaml_novelty, "--adata", write(a, "cells"), "--flag-key", "novel", "--split-key", "split",
                    "--split-train", "train", "--label-key", "cell_type", "--method", "maxproba", "--model", tmp_path / "model",
                    "--reject",
                    "--no-plots", "--outdir", tmp_path / "nov")
    assert code == 0, err
    met = json.loads((tmp_path / "nov" / "rejection" / "metrics.json").read_text())
    assert str(tmp_path / "model") in met["model"], met
    pred = pd.read_csv(tmp_path / "nov" / "rejection" / "predictions.csv", index_col=0)
    mine = saved.predict(a[pred.index]).astype(str).to_numpy()
    np.testing.assert_array_equal(pred["pred_forced"].astype(str).to_numpy(), mine)

# ------------------------------------------------------------------ 9. interrupts
def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_9_ctrl_c_during_export_seurat(tmp_path):
    fake = tmp_path / "Rscript"
    fake.write_text(f"#!/bin/sh\ntouch {tmp_path / 'started'}\nsleep 30\n"); fake.chmod(0o755)
    rds = tmp_path / "obj.rds"; rds.write_bytes(b"X\n")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "scaml_export_seurat"), "--input", str(rds), "--output",
                             str(tmp_path / "o.h5ad"), "--rscript", str(fake)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible)
    t = time.monotonic()
    while not (tmp_path / "started").exists() and proc.poll() is None and time.monotonic() - t < 60:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted"), err
    assert "Traceback" not in err
    assert not (tmp_path / "o.h5ad").exists()

def test_9_signal_after_a_complete_results_folder_exits_0(capsys, tmp_path):
    import argparse

    from scaml.cli import _run
    from scaml.results import ResultsFolder
    def main(args):
        with ResultsFolder(tmp_path / "done") as rf:
            rf.write_text("a.txt", "a"); rf.write_manifest({"scaml_version": "x"})
        raise KeyboardInterrupt                                  # Ctrl-C while printing the summary
    p = argparse.ArgumentParser(prog="scaml_x")
    capsys.readouterr()
    assert _run(main, p, []) == 0
    err = capsys.readouterr().err
    assert "interrupted" in err and "complete" in err and str(tmp_path / "done") in err, err
    assert (tmp_path / "done" / "manifest.json").is_file()

# ------------------------------------------------------------------ 10. still open from earlier rounds
@pytest.fixture(scope="module")
def facs_model(tmp_path_factory, facs):
    from scaml.preprocess import Preprocessor
    d = tmp_path_factory.mktemp("model") / "lr"
    CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=300)).fit(facs[facs.obs.split == "train"]).save(d)
    return d

def test_10_duplicated_gene_name_at_predict(capsys, facs, write, tmp_path, facs_model):
    a = facs[facs.obs.split == "test"].copy()
    names = a.var_names.to_list(); names[1] = names[0]; a.var_names = names
    code, err = run(capsys, scaml_predict, "--model", facs_model, "--adata", write(a, "dup"), "--out", tmp_path / "p.csv")
    assert_error(code, err, "duplicated gene names", names[0], "var_names_make_unique")
    assert "Reindexing" not in err

def test_10_duplicated_cell_names_at_predict(capsys, facs, write, tmp_path, facs_model):
    a = facs[facs.obs.split == "test"].copy()
    names = a.obs_names.to_list(); names[1] = names[0]; a.obs_names = names
    code, err = run(capsys, scaml_predict, "--model", facs_model, "--adata", write(a, "dup"), "--out", tmp_path / "p.csv")
    assert_error(code, err, "duplicated cell names", names[0], "obs_names_make_unique")
    assert not (tmp_path / "p.csv").exists()

def test_10_negative_values_hint_without_other_matrix(capsys, facs, write, tmp_path):
    a = facs.copy(); a.X = a.X.toarray(); a.X[0, 0] = -1.0
    code, err = run(capsys, scaml_train, "--adata", write(a, "neg"), *KEY, *LR, "--outdir", tmp_path / "r")
    line = assert_error(code, err, "negative values", "--input-scale scaled")
    assert "with none" not in line, line

def test_10_api_wrong_types_and_damaged_results(facs_run, tmp_path):
    import shutil

    from scaml.results import per_class_table, read_results, read_summary, save_figures
    for call, param in [(lambda: read_summary(12), "results_dir"), (lambda: read_results(None), "results_dir"),
                        (lambda: save_figures(3.5), "results")]:
        with pytest.raises(TypeError, match=param): call()
    r = tmp_path / "r"; shutil.copytree(facs_run, r)
    (r / "summary_metrics.json").write_text((r / "summary_metrics.json").read_text()[:50])
    with pytest.raises(ValueError, match="summary_metrics.json"): read_summary(r)
    r2 = tmp_path / "r2"; shutil.copytree(facs_run, r2)
    pc = pd.read_csv(r2 / "lr" / "per_class.csv"); pc.drop(columns="f1").to_csv(r2 / "lr" / "per_class.csv", index=False)
    with pytest.raises(ValueError, match=r"per_class.csv.*f1"): per_class_table(r2)
    with pytest.raises(TypeError, match="path"): CellTypeModel.load(42)

# ------------------------------------------------------------------ 11. silent no-ops
def test_11_group_key_without_calibrate(capsys, data_dir, tmp_path):
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--group-key", "split",
                    "--outdir", tmp_path / "r")
    assert code == 0, err
    one_warning(err, "--group-key", "--calibrate")

def test_11_group_key_missing_fails_before_work(capsys, data_dir, tmp_path):
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--calibrate", "temperature",
                    "--group-key", "nosuch", "--outdir", tmp_path / "r")
    assert_error(code, err, "nosuch", "group_key")
    assert "preprocessing fitted" not in err

def test_11_coverage_without_reject(capsys, facs, write, tmp_path):
    a = facs[:600].copy(); a.obs["novel"] = (a.obs.cell_type == "Hepatocyte").astype(str)
    code, err = run(capsys, scaml_novelty, "--adata", write(a, "c"), "--flag-key", "novel", "--method", "lof",
                    "--coverage", "0.9", "--no-plots", "--outdir", tmp_path / "n")
    assert code == 0, err
    one_warning(err, "--coverage", "--reject")

def test_11_ensemble_one_model_and_repeated_models(capsys, data_dir, tmp_path):
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, *LR, "--ensemble", "--outdir", tmp_path / "r")
    assert_error(code, err, "--ensemble", "two or more")
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, "--models", "lr", "lr", "--no-plots",
                    "--no-save-models", "--n-top-genes", "300", "--outdir", tmp_path / "r2")
    assert code == 0, err
    one_warning(err, "--models", "lr", "once")

def test_11_custom_estimator_named_like_a_builtin():
    from sklearn.svm import LinearSVC

    from scaml.benchmark import run_benchmark
    from scaml.data import toy_adata
    ad = toy_adata(n_obs=120, n_vars=60, n_classes=3)
    with pytest.raises(ValueError, match="built-in"):
        run_benchmark(ad, split_key="batch", train="b0", models={"lr": LinearSVC()})

def test_11_unsavable_model_says_nothing_was_saved(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    from scaml.benchmark import run_benchmark
    from scaml.data import toy_adata
    ad = toy_adata(n_obs=160, n_vars=60, n_classes=3)
    with pytest.warns(UserWarning, match="kneighbors.*not saved"):
        run_benchmark(ad, split_key="batch", train="b0", models={"kneighbors": KNeighborsClassifier()}, n_top_genes=30,
                      outdir=tmp_path / "r", plots=False)
    assert not (tmp_path / "r" / "kneighbors" / "model").exists()

def test_11_all_zero_query_cells_warn(capsys, facs, write, tmp_path, facs_model):
    a = facs[facs.obs.split == "test"][:200].copy()
    X = a.X.toarray(); X[:20] = 0; a.X = sp.csr_matrix(X)
    code, err = run(capsys, scaml_predict, "--model", facs_model, "--adata", write(a, "z"), "--out", tmp_path / "p.csv")
    assert code == 0, err
    one_warning(err, "20 cells", "no expression")

def test_11_unknown_class_and_rejection(facs):
    from scaml.rejection import fit_rejection
    a = facs[:800].copy()
    a.obs["cell_type"] = a.obs.cell_type.astype(str).replace({"Monocyte": "Unknown"})
    with pytest.raises(ValueError, match="'Unknown'"):
        fit_rejection(a, label_key="cell_type", n_top_genes=200)

def test_11_n_threads_negative(capsys, data_dir, tmp_path):
    with pytest.raises(SystemExit):
        scaml_train(["--adata", str(data_dir / FACS), *KEY, *LR, "--n-threads", "-1", "--outdir", str(tmp_path / "r")])
    assert "--n-threads -1 is out of range" in capsys.readouterr().err

def test_11_report_missing_label_key(capsys, data_dir, tmp_path):
    code, err = run(capsys, scaml_report, "--adata", data_dir / FACS, "--label-key", "nosuch", "--split-key", "split",
                    "--split-train", "train", "--split-test", "test", "--models", "lr", "--outdir", tmp_path / "rep")
    assert_error(code, err, "nosuch", "--label-key")
    assert "cell 7" not in err

# ------------------------------------------------------------------ beyond the list: the same inputs elsewhere
def test_3_predict_with_a_declared_scale_model(capsys, data_dir, facs, write, tmp_path):
    "A model trained with --input-scale counts, given log1p cells at predict time: its declaration is checked too."
    from scaml.input_scale import normalize_log1p
    code, err = run(capsys, scaml_train, "--adata", data_dir / FACS, *KEY, "--models", "lr", "--n-top-genes", "300",
                    "--no-plots", "--input-scale", "counts", "--outdir", tmp_path / "r")
    assert code == 0, err
    a = facs[facs.obs.split == "test"].copy(); a.X = normalize_log1p(a.X)
    args = ["--model", tmp_path / "r" / "lr" / "model", "--adata", write(a, "log"), "--out", tmp_path / "p.csv"]
    code, err = run(capsys, scaml_predict, *args)
    assert_error(code, err, "trained on values declared input_scale='counts'", "look like log", "--trust-input-scale")
    code, err = run(capsys, scaml_predict, *args, "--trust-input-scale")
    assert code == 0, err
    one_warning(err, "look like log")

def test_11_models_repeated_in_matrix_and_learning_curve(capsys, data_dir, tmp_path):
    from scaml.cli import scaml_learning_curve
    code, err = run(capsys, scaml_learning_curve, "--adata", data_dir / FACS, "--group-key", "split", "--model", "lr",
                    "lr", "--n-top-genes", "200", "--n-groups", "--fractions", "0.5", "--n-repeats", "1",
                    "--test-groups", "test", "--outdir", tmp_path / "lc")
    assert code == 0, err
    one_warning(err, "--model lr lr", "once")
    lc = pd.read_csv(tmp_path / "lc" / "learning_curve.csv")
    assert (lc["model"] == "lr").sum() == 1

def test_11_query_corrections_refused_in_flags(capsys, tmp_path):
    missing = tmp_path / "not_read.h5ad"
    code, err = run(capsys, scaml_train, "--adata", missing, *KEY, *LR, "--align-query", "--dask-workers", "1",
                    "--outdir", tmp_path / "r")
    line = assert_error(code, err, "--align-query", "Dask")
    assert "engine='memory'" not in line and "align_query=" not in line

def test_10_api_arguments_of_the_wrong_type_more(tmp_path):
    import scaml
    from scaml.calibration import calibrator_from_dict
    from scaml.data import toy_adata
    from scaml.preprocess import Preprocessor
    ad = toy_adata(n_obs=120, n_vars=60, n_classes=3)
    model = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=30)).fit(ad)
    cases = [(lambda: CellTypeModel("lr", preprocessor="hvg"), "preprocessor=str"),
             (lambda: CellTypeModel("lr").fit(ad, classes=5), "classes=5"),
             (lambda: scaml.annotate(ad, model, key_added=5), "key_added=5"),
             (lambda: scaml.run_benchmark(ad, split_key="batch", train="b0", models=["lr"], outdir=5), "outdir=5"),
             (lambda: calibrator_from_dict("temperature"), "d=str"),
             (lambda: Preprocessor(trust_input_scale="yes"), "trust_input_scale='yes'"),
             (lambda: model.save(None), "path=None")]
    for call, phrase in cases:
        with pytest.raises(TypeError) as e: call()
        assert phrase in str(e.value), (phrase, str(e.value))
    assert "5_pred" not in ad.obs

@pytest.mark.parametrize("flags, phrases", [
    (["--engine", "streaming"], ["--engine streaming", "--backed"]),
    (["--use-rep", "X_pca", "--backed", "--engine", "out-of-core"], ["--use-rep X_pca", "--engine out-of-core"]),
    (["--use-rep", "X_pca", "--dask-workers", "1"], ["--use-rep X_pca", "Dask"])])
def test_4_engine_refusals_name_flags(capsys, tmp_path, flags, phrases):
    "Every engine refusal reaches a command-line user in flags, before any data is read."
    code, err = run(capsys, scaml_train, "--adata", tmp_path / "not_read.h5ad", *KEY, *LR, *flags,
                    "--outdir", tmp_path / "r")
    line = assert_error(code, err, *phrases)
    assert "engine='" not in line and "use_rep" not in line, line

def test_8_saved_model_without_method_scores_with_it(capsys, facs, write, tmp_path, facs_model):
    "--model FOLDER with the default method scores with the saved model (maxproba), not a refusal in Python terms."
    a = facs[:800].copy(); a.obs["novel"] = (a.obs.cell_type == "Hepatocyte").astype(str)
    code, err = run(capsys, scaml_novelty, "--adata", write(a, "c"), "--flag-key", "novel", "--label-key", "cell_type",
                    "--model", facs_model, "--no-plots", "--outdir", tmp_path / "n")
    assert code == 0, err
    assert json.loads((tmp_path / "n" / "manifest.json").read_text())["method"] == "maxproba"
    code, err = run(capsys, scaml_novelty, "--adata", write(a, "c"), "--flag-key", "novel", "--label-key", "cell_type",
                    "--method", "combined", "--model", facs_model, "--no-plots", "--outdir", tmp_path / "n2")
    assert_error(code, err, "--method combined", "--method maxproba")
