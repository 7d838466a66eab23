"""The out-of-core engine end to end on real cells: a backed file sorted by cell type, models trained from its blocks
(lr and actinn streaming, xgb on a sample), the results layout of the original scripts, and the choices it refuses."""
from __future__ import annotations

import json
from pathlib import Path

import anndata
import h5py
import numpy as np
import pytest

import scaml.benchmark
import scaml.engines
import scaml.outofcore
from scaml.benchmark import run_benchmark
from scaml.datasets import load_task


@pytest.fixture(scope="module")
def sorted_file(tmp_path_factory, data_dir) -> Path:
    "The 12-type Tabula Muris FACS split (5,000 cells) written sorted by cell type, the worst order for minibatches."
    task = load_task("actinn_tutorial")
    path = tmp_path_factory.mktemp("ooc") / "sorted.h5ad"
    task[np.argsort(task.obs["label"].to_numpy(), kind="stable")].copy().write_h5ad(path)
    return path

@pytest.fixture(scope="module")
def memory_run(sorted_file):
    return run_benchmark(anndata.read_h5ad(sorted_file), label_key="label", split_key="split", train="train",
                         test="test", models=["lr", "xgb", "actinn"], progress=False)

def test_streams_and_samples(sorted_file, memory_run, tmp_path, monkeypatch, seed_layout):
    # small thresholds so that 4,000 training cells take the paths ten million do
    monkeypatch.setattr(scaml.outofcore, "GATHER_CELLS", 0)
    monkeypatch.setattr(scaml.outofcore, "MAX_CELLS", 1000)
    backed = anndata.read_h5ad(sorted_file, backed="r")
    res = run_benchmark(backed, label_key="label", split_key="split", train="train", test="test",
                        models=["lr", "xgb", "actinn"], engine="out-of-core", block_size=512, progress=False,
                        outdir=tmp_path / "ooc", inputs=[sorted_file])
    man = json.loads((tmp_path / "ooc" / "manifest.json").read_text())
    assert man["engine"] == "out-of-core"
    n_train = man["n_train"]
    assert man["n_train_model"]["lr"] == man["n_train_model"]["actinn"] == n_train == 4000
    assert abs(man["n_train_model"]["xgb"] - 1000) <= 12          # the stratified sample
    assert man["blocks"]["train"] > 1
    # the streamed models match the in-memory ones; xgb on a quarter of the cells stays close
    f1, f1_mem = res.summary["f1_macro"].astype(float), memory_run.summary["f1_macro"].astype(float)
    assert abs(f1["lr"] - f1_mem["lr"]) < 0.02, (f1, f1_mem)
    assert abs(f1["actinn"] - f1_mem["actinn"]) < 0.03, (f1, f1_mem)
    assert f1["xgb"] > f1_mem["xgb"] - 0.06, (f1, f1_mem)
    # same test cells, in the file's order
    assert list(res.predictions["lr"].index) == list(memory_run.predictions["lr"].index)
    p = seed_layout(tmp_path / "ooc")                     # the original SCAML tools read it (where the checker is)
    if p is not None: assert p.returncode == 0, p.stdout + p.stderr
    backed.file.close()

def test_auto_engine_switches_above_threshold(sorted_file, memory_run, monkeypatch):
    monkeypatch.setattr(scaml.engines, "OUT_OF_CORE_CELLS", 1000)
    backed = anndata.read_h5ad(sorted_file, backed="r")
    res = run_benchmark(backed, label_key="label", split_key="split", train="train", test="test", models=["lr"],
                        progress=False)
    assert res.manifest["engine"] == "out-of-core"
    # 4,000 cells are gathered and train exactly as in memory
    np.testing.assert_allclose(res.proba["lr"].to_numpy(), memory_run.proba["lr"].to_numpy(), atol=1e-5)
    monkeypatch.setattr(scaml.engines, "OUT_OF_CORE_CELLS", 10_000)
    res = run_benchmark(backed, label_key="label", split_key="split", train="train", test="test", models=["lr"],
                        progress=False)
    assert res.manifest["engine"] == "streaming"
    backed.file.close()

def test_refuses_calibration_and_embeddings(sorted_file):
    backed = anndata.read_h5ad(sorted_file, backed="r")
    with pytest.raises(ValueError, match="calibrate='temperature' refits each model"):
        run_benchmark(backed, label_key="label", split_key="split", train="train", models=["lr"],
                      engine="out-of-core", calibrate="temperature", progress=False)
    with pytest.raises(ValueError, match="which the out-of-core engine transforms block by block"):
        run_benchmark(backed, label_key="label", split_key="split", train="train", models=["lr"],
                      engine="out-of-core", align_query=True, progress=False)
    with pytest.raises(ValueError, match="use_rep trains on an embedding"):
        run_benchmark(backed, label_key="label", split_key="split", train="train", models=["lr"],
                      engine="out-of-core", use_rep="X_pca", progress=False)
    backed.file.close()

def test_cli_engine_flag(sorted_file, cli, tmp_path):
    out = tmp_path / "cli"
    cli("scaml_train", "--adata", sorted_file, "--backed", "--engine", "out-of-core", "--label-key", "label",
        "--split-key", "split", "--split-train", "train", "--split-test", "test", "--models", "lr",
        "--outdir", out, "--no-plots", "--quiet")
    assert json.loads((out / "manifest.json").read_text())["engine"] == "out-of-core"
    p = cli("scaml_train", "--adata", sorted_file, "--backed", "--engine", "out-of-core", "--dask-workers", "1",
            "--label-key", "label", "--split-key", "split", "--split-train", "train", "--models", "lr",
            "--outdir", tmp_path / "x", check=False)
    assert p.returncode == 1 and "two engines" in p.stderr

def test_resampled_atlas_has_64bit_row_pointers(tmp_path, data_dir):
    from scaml.datasets import load_dataset
    from scaml.streaming import resample_counts
    src = load_dataset("actinn_tm_droplet")[:, :500]
    path = resample_counts(src, 3000, tmp_path / "atlas.h5ad", keep_obs=["cell_type"], shuffle=True, block_size=700)
    with h5py.File(path) as f:
        assert f["X/indptr"].dtype == np.int64 and f["X/indices"].dtype == np.int32
    a = anndata.read_h5ad(path)
    assert a.shape == (3000, 500) and a.X.nnz > 0 and np.all(a.X.data == np.round(a.X.data))
    assert str(a.obs["source_cell"].dtype) == "category" and str(a.obs["cell_type"].dtype) == "category"
    # random order: the cell types are mixed along the file, unlike a file sorted by source cell
    first = a.obs["cell_type"].to_numpy()[:300]
    assert len(set(first)) >= 3
    assert not list(tmp_path.glob(".*partial*"))
