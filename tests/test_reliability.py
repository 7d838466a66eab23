"""Bad inputs, interrupted runs and tampered model files, on real files copied into tmp_path and made bad.

Every error goes through the `scaml_train` / `scaml_predict` entry points (the functions the console scripts call)
and must be one `error: ...` line plus a `hint:` line, exit status 1, and no traceback.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest

from scaml.cli import scaml_predict, scaml_train
from scaml.modelfile import _meta_sha256, _sha256
from scaml.models import CellTypeModel
from conftest import assert_error

CB10X = "cellbench_lung_celllines/cellbench_10x_3cl.h5ad"          # 895 cells x 894 genes, raw counts, 3 cell lines
PBMC = "scanpy_pbmc68k_reduced/scanpy_pbmc68k_reduced.h5ad"         # scaled X (negative values), obsm X_pca/X_umap
FAST = ["--label-key", "cell_line", "--models", "lr", "--no-plots", "--no-save-models", "--quiet"]

# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def cb(data_dir) -> anndata.AnnData:
    return anndata.read_h5ad(data_dir / CB10X)

@pytest.fixture
def write(tmp_path):
    "Write an AnnData (a real file made bad) into tmp_path; returns the path."
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

def train(capsys, *argv):
    return run(capsys, scaml_train, *argv)

def warnings_of(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning: ")]

def split_col(a: anndata.AnnData, values: np.ndarray, key: str = "part") -> anndata.AnnData:
    a = a.copy()
    a.obs[key] = pd.Categorical(values)
    return a

# ------------------------------------------------------------------ 1. files
def test_1_path_missing(capsys, tmp_path):
    code, err = train(capsys, "--adata", tmp_path / "nope.h5ad", "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "no such file", "nope.h5ad", "check the path")

def test_1_not_hdf5(capsys, data_dir, tmp_path):
    bad = tmp_path / "cells.h5ad"
    bad.write_text("# CellBench lung cell lines\n\nA text file, not an AnnData.\n")      # a text file named .h5ad
    code, err = train(capsys, "--adata", bad, "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "is not an HDF5/.h5ad file", "convert it with scaml.io.read")

def test_1_truncated_h5ad(capsys, data_dir, tmp_path):
    bad = tmp_path / "cut.h5ad"
    bad.write_bytes((data_dir / CB10X).read_bytes()[:20_000])
    code, err = train(capsys, "--adata", bad, "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "damaged or truncated HDF5 file", "copy or download it again")

def test_1_seuratdisk_v5_empty_h5ad(capsys, tmp_path):
    bad = tmp_path / "seurat_v5.h5ad"
    with h5py.File(bad, "w"):                      # what SeuratDisk's Convert leaves for a Seurat v5 object
        pass
    assert bad.stat().st_size == 800
    code, err = train(capsys, "--adata", bad, "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "without the AnnData 'X'/'obs' groups", "SeuratDisk", "scaml_export_seurat")

# ------------------------------------------------------------------ 2. keys
def test_2_label_and_split_key_absent(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", "--label-key", "celltype",
                      "--models", "lr", "--outdir", tmp_path / "o")
    assert_error(code, err, "label_key='celltype' is not a column of adata.obs", "available: 'cell_line'", "'batch'")
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split-key", "harvest", "--split-train", "H4", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "split_key='harvest' is not a column", "'cell_line_demuxlet'", "'batch'")
    assert not (tmp_path / "o").exists()

def test_2_embedding_absent(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / PBMC, "--label-key", "bulk_labels", "--split", "random",
                      "--embedding", "X_harmony", "--models", "lr", "--outdir", tmp_path / "o")
    assert_error(code, err, "use_rep='X_harmony' is not in adata.obsm", "available: 'X_pca', 'X_umap'")
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", "--embedding", "X_pca", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "available: none")

def test_2_embedding_present_trains(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / PBMC, "--label-key", "bulk_labels", "--split", "random",
                      "--embedding", "X_pca", "--models", "lr", "--no-plots", "--quiet", "--outdir", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["features"] == "obsm['X_pca']"

# ------------------------------------------------------------------ 3. splits
def test_3_split_value_absent_and_empty_test(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split-key", "batch", "--split-train", "H4", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "train='H4' not found in adata.obs['batch']", "values there: 'sc_10x'")
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split-key", "batch", "--split-train", "sc_10x", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "the test side is empty", "pass test values")

def test_3_training_side_unlabelled_or_single_class(capsys, cb, write, tmp_path):
    a = split_col(cb, np.where(cb.obs.cell_line == "HCC827", "x", "y"))
    code, err = train(capsys, "--adata", write(a, "one"), "--split-key", "part", "--split-train", "x", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "the training side holds a single class (['HCC827'])", "needs at least two")
    a.obs["cell_line"] = a.obs.cell_line.astype(str).where(a.obs.part == "y", None)   # no labels on side x
    code, err = train(capsys, "--adata", write(a, "unlab"), "--split-key", "part", "--split-train", "x", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "the training side has no labelled cells", "is missing (NaN or empty)")
    assert not (tmp_path / "o").exists()

# ------------------------------------------------------------------ 4. labels
def test_4_missing_labels_dropped_with_counted_warning(capsys, cb, write, tmp_path):
    a = cb.copy()
    lab = a.obs.cell_line.astype(str).to_numpy().astype(object)
    lab[:40], lab[40:55], lab[55:60] = np.nan, "", "  "
    a.obs["cell_line"] = lab
    code, err = train(capsys, "--adata", write(a, "nanlab"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert code == 0, err
    assert warnings_of(err) == ["warning: dropped 60 of 895 cells with a missing label in obs['cell_line']"]
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["n_train"] + m["n_test"] == 835

def test_4_all_labels_missing(capsys, cb, write, tmp_path):
    a = cb.copy()
    a.obs["cell_line"] = ""
    code, err = train(capsys, "--adata", write(a, "nolab"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "every value of adata.obs['cell_line'] is missing", "pass a label_key that holds labels")

# ------------------------------------------------------------------ 5. expression values
def test_5_negative_values(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / PBMC, "--label-key", "bulk_labels", "--split", "random",
                      "--models", "lr", "--outdir", tmp_path / "o")                   # scaled X, as scanpy ships it
    assert_error(code, err, "X holds negative values (minimum", ".raw with 765 genes", "layer='raw' (--layer raw)")

@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_5_nonfinite_values_anywhere(capsys, cb, write, tmp_path, value):
    a = cb.copy()
    a.X = a.X.astype(np.float32)
    a.X.data[-1] = value                     # the very last stored value: found even beyond the sampled ones
    code, err = train(capsys, "--adata", write(a, "bad"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "X holds NaN or infinite values", "neither counts nor log-normalised")

def test_5_lognormalised_input_is_not_logged_twice(capsys, cb, write, tmp_path):
    import scanpy as sc
    lg = cb.copy()
    lg.X = lg.X.astype(np.float32)
    sc.pp.normalize_total(lg, target_sum=1e4)
    sc.pp.log1p(lg)
    for name, a in [("counts", cb), ("lognorm", lg)]:
        code, err = train(capsys, "--adata", write(a, name), "--split", "random", *FAST, "--outdir", tmp_path / name)
        assert code == 0, err
    mc, ml = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("counts", "lognorm"))
    assert (mc["input_kind"], ml["input_kind"]) == ("counts", "lognorm")
    assert (tmp_path / "counts/features.txt").read_text() == (tmp_path / "lognorm/features.txt").read_text()
    pc, pl = (pd.read_csv(tmp_path / n / "lr/proba.csv", index_col=0) for n in ("counts", "lognorm"))
    assert np.abs(pc.to_numpy() - pl.to_numpy()).max() < 1e-3          # logged twice would change everything

def test_5_integer_valued_floats_are_counts(capsys, cb, write, tmp_path):
    runs = {"int64": cb.X.astype(np.int64), "float64": cb.X.astype(np.float64)}
    for name, X in runs.items():
        a = cb.copy()
        a.X = X
        code, err = train(capsys, "--adata", write(a, name), "--split", "random", *FAST, "--outdir", tmp_path / name)
        assert code == 0, err
        assert json.loads((tmp_path / name / "manifest.json").read_text())["input_kind"] == "counts"
    assert (tmp_path / "int64/lr/proba.csv").read_bytes() == (tmp_path / "float64/lr/proba.csv").read_bytes()

# ------------------------------------------------------------------ 6. genes and names
def test_6_gene_overlap_too_small(capsys, cb, data_dir, write, tmp_path):
    ens = cb.copy()
    ens.var_names = [f"ENSG{i:011d}" for i in range(ens.n_vars)]                  # another kind of gene identifier
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(ens, "ens"), *FAST, "--allow-overlap",
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "only 0 of the model's 894 genes are in adata.var_names (0.0%, minimum 50%)",
                  "symbols vs Ensembl IDs")
    part = cb[:, 400:].copy()                                                      # 494 of 894 genes: 55%
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(part, "part"), *FAST, "--allow-overlap",
                      "--outdir", tmp_path / "o")
    assert code == 0, err
    assert any("400 of 894 model genes (44.7%) are missing from the data and set to 0" in w for w in warnings_of(err))
    ov = json.loads((tmp_path / "o" / "manifest.json").read_text())["gene_overlap"]
    assert (ov["n_features"], ov["n_missing"]) == (894, 400)
    part = cb[:, 500:].copy()                                                      # 394 of 894: 44%, below 50%
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(part, "part2"), *FAST, "--allow-overlap",
                      "--outdir", tmp_path / "o2")
    assert_error(code, err, "only 394 of the model's 894 genes", "minimum 50%")

def test_6_duplicated_names(capsys, cb, data_dir, write, tmp_path):
    a = cb.copy()
    a.var_names = list(a.var_names[:-3]) + list(a.var_names[:3])
    code, err = train(capsys, "--adata", write(a, "dupg"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "3 duplicated gene names in adata", "var_names_make_unique()")
    a = cb.copy()
    a.obs_names = list(a.obs_names[:-5]) + list(a.obs_names[:5])
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(a, "dupc"), *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "5 duplicated cell names in adata", "obs_names_make_unique()")

# ------------------------------------------------------------------ 7. gene selection
def test_7_n_hvg_larger_than_genes(capsys, data_dir, tmp_path):
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", "--n-hvg", "100000",
                      *[a for a in FAST if a != "--quiet"], "--outdir", tmp_path / "o")
    assert code == 0, err
    assert "n_top_genes=100000 is not smaller than the 894 genes: keeping all of them" in err
    assert len((tmp_path / "o" / "features.txt").read_text().splitlines()) == 894
    with pytest.raises(SystemExit) as e:                          # refused by the parser, before any reading
        train(capsys, "--adata", data_dir / CB10X, "--split", "random", "--n-hvg", "0", *FAST, "--outdir", tmp_path / "o2")
    assert e.value.code == 2 and "argument --n-top-genes/--n-hvg: --n-top-genes 0 is out of range" in capsys.readouterr().err

def test_7_degenerate_hvg_fits(capsys, cb, write, tmp_path):
    tiny = cb[np.r_[0:3, 300:303, 600:603]].copy()           # 9 cells, 3 per class
    tiny.X = tiny.X.toarray()
    tiny.X[:, ::2] = 5                                       # half of the genes constant
    tiny.X[:, 1::4] = 0                                      # a quarter never expressed
    code, err = train(capsys, "--adata", write(tiny, "tiny"), "--split", "random", "--test-size", "0.34",
                      "--n-hvg", "50", *FAST, "--outdir", tmp_path / "o")
    assert code == 0, err
    assert len((tmp_path / "o" / "features.txt").read_text().splitlines()) == 50
    proba = pd.read_csv(tmp_path / "o" / "lr" / "proba.csv", index_col=0)
    n_test = json.loads((tmp_path / "o" / "manifest.json").read_text())["n_test"]
    assert len(proba) == n_test >= 3 and np.allclose(proba.sum(1), 1, atol=1e-5)

# ------------------------------------------------------------------ 8. test classes
def test_8_unseen_test_classes_and_single_class_test(capsys, cb, write, tmp_path):
    lines = cb.obs.cell_line.astype(str).to_numpy()
    part = np.where((lines == "HCC827") & (np.arange(cb.n_obs) % 2 == 0), "x", "y")   # x: half of HCC827 only
    p = write(split_col(cb, part), "parts")
    code, err = train(capsys, "--adata", p, "--split-key", "part", "--split-train", "y", "--split-test", "x", *FAST,
                      "--outdir", tmp_path / "single")
    assert code == 0, err
    m = json.loads((tmp_path / "single" / "lr" / "metrics.json").read_text())
    assert m["roc_auc_macro_ovr"] is None                        # NaN in JSON: undefined with one test class
    assert m["n_test"] == (part == "x").sum() and 0 <= m["accuracy"] <= 1
    code, err = train(capsys, "--adata", p, "--split-key", "part", "--split-train", "x", "--split-test", "y", *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "single class (['HCC827'])")
    part = np.where(lines == "H1975", "x", np.where(np.arange(cb.n_obs) % 2 == 0, "y", "x"))
    code, err = train(capsys, "--adata", write(split_col(cb, part), "unseen"), "--split-key", "part",
                      "--split-train", "y", "--split-test", "x", *FAST, "--outdir", tmp_path / "unseen")
    assert code == 0, err
    n_h1975 = int((lines == "H1975").sum())
    assert warnings_of(err) == [f"warning: test classes ['H1975'] never occur in training ({n_h1975} cells); "
                                "no model can predict them. See f1_macro_seen"]
    m = json.loads((tmp_path / "unseen" / "lr" / "metrics.json").read_text())
    assert m["n_test_unseen"] == n_h1975 and 0 <= m["f1_macro_seen"] <= 1

# ------------------------------------------------------------------ 9. model directories
@pytest.fixture(scope="module")
def models(tmp_path_factory, data_dir):
    "lr, rf, xgb, mlp models trained by scaml_train on a real file, plus an actinn model."
    out = tmp_path_factory.mktemp("models") / "run"
    code = scaml_train(["--adata", str(data_dir / CB10X), "--label-key", "cell_line", "--split", "random", "--models",
                        "lr", "rf", "xgb", "mlp", "--n-hvg", "300", "--no-plots", "--quiet", "--outdir", str(out)])
    assert code == 0
    a = anndata.read_h5ad(data_dir / CB10X)
    from scaml.preprocess import Preprocessor
    CellTypeModel("actinn", preprocessor=Preprocessor(n_top_genes=300), max_epochs=2).fit(
        a, label_key="cell_line").save(out / "actinn" / "model")
    return out

@pytest.fixture
def model_copy(models, tmp_path):
    def cp(name: str) -> Path:
        d = tmp_path / f"{name}_model"
        shutil.copytree(models / name / "model", d)
        return d
    return cp

def rehash(d: Path) -> None:
    "Update the checksums in meta.json after editing files, as an attacker would."
    meta = json.loads((d / "meta.json").read_text())
    meta["files"] = {p.name: _sha256(p) for p in sorted(d.iterdir()) if p.is_file() and p.name != "meta.json"}
    meta["meta_sha256"] = _meta_sha256(meta)
    (d / "meta.json").write_text(json.dumps(meta))

def edit_meta(d: Path, *, sign: bool = True, **changes) -> None:
    "Edit meta.json; `sign` also updates its own checksum, as an attacker who knows the format would."
    meta = json.loads((d / "meta.json").read_text())
    meta.update(changes)
    if sign: meta["meta_sha256"] = _meta_sha256(meta)
    (d / "meta.json").write_text(json.dumps(meta))

class Payload:
    "Unpickling this creates a marker file: proof that code from the file ran."
    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))

def predict(capsys, model: Path, data_dir, tmp_path):
    return run(capsys, scaml_predict, "--model", model, "--adata", data_dir / CB10X, "--out", tmp_path / "p.csv",
               "--overwrite", "--quiet")

def test_9_model_from_another_scaml_version(capsys, model_copy, data_dir, tmp_path):
    d = model_copy("lr")
    edit_meta(d, scaml_version="0.0.1")
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert code == 0, err
    assert any("was saved by scaml 0.0.1; this is scaml" in w for w in warnings_of(err))
    edit_meta(d, format_version=99)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "uses model format 99", "Retrain with this version")

@pytest.mark.parametrize("name,file", [("lr", "weights.npz"), ("rf", "forest.npz"), ("xgb", "model.json"),
                                       ("mlp", "weights.npz"), ("actinn", "state_dict.pt")])
def test_9_truncated_or_edited_model_file(capsys, model_copy, data_dir, tmp_path, name, file):
    d = model_copy(name)
    f = d / file
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "does not match the checksum recorded in meta.json", "Refusing to load it")
    rehash(d)                                                    # checksums updated: the file itself is still refused
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, f"could not be loaded as a '{name}' model", "Restore the original or retrain")

@pytest.mark.parametrize("name,file", [("lr", "weights.npz"), ("rf", "forest.npz"), ("xgb", "model.json"),
                                       ("actinn", "state_dict.pt")])
def test_9_pickle_in_place_of_a_model_file_never_runs(capsys, model_copy, data_dir, tmp_path, name, file):
    d = model_copy(name)
    Payload.marker = str(tmp_path / "PWNED")
    (d / file).write_bytes(pickle.dumps(Payload()))
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, f"could not be loaded as a '{name}' model")
    assert not (tmp_path / "PWNED").exists()

def test_9_npz_with_object_array_refused(capsys, model_copy, data_dir, tmp_path):
    d = model_copy("lr")
    Payload.marker = str(tmp_path / "PWNED")
    np.savez(d / "weights.npz", W=np.array([Payload()], dtype=object), b=np.zeros(3))
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "could not be loaded as a 'lr' model", "Object arrays cannot be loaded")
    assert not (tmp_path / "PWNED").exists()

def test_9_crafted_forest_files_refused(capsys, model_copy, data_dir, tmp_path):
    """Node tables are checked before trees are rebuilt: indices outside a tree, or another layout, are refused."""
    d = model_copy("rf")
    z = dict(np.load(d / "forest.npz", allow_pickle=False))
    bad = z["nodes0"].copy(); bad["left_child"][0] = 10**9                  # a child far outside the tree
    np.savez(d / "forest.npz", **{**z, "nodes0": bad})
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "holds a tree whose nodes point outside it (tree 0)", "refusing to load it")
    bad = z["nodes0"].copy(); bad["feature"][0] = 10**6                     # a gene the model does not have
    np.savez(d / "forest.npz", **{**z, "nodes0": bad})
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "point outside it")
    np.savez(d / "forest.npz", **{**z, "nodes0": z["nodes0"][["left_child", "right_child", "feature"]]})
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "another scikit-learn version")

def test_9_wrong_shapes_and_edited_meta(capsys, model_copy, data_dir, tmp_path):
    d = model_copy("lr")
    np.savez(d / "weights.npz", W=np.zeros((5, 3)), b=np.zeros(3))                # wrong number of features
    rehash(d)
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "could not be loaded as a 'lr' model")
    d = model_copy("mlp")
    (d / "extra.pkl").write_bytes(pickle.dumps({"a": 1}))
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "['extra.pkl']", "not listed in meta.json")
    d = model_copy("xgb")
    edit_meta(d, files={"../../preprocess.json": "0" * 64})
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "lacks ['files']")
    edit_meta(d, files={**{p.name: _sha256(p) for p in d.iterdir() if p.name != "meta.json"}, "../x.json": "0"})
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "'../x.json', which is not a file of the model directory")
    d = model_copy("rf")
    edit_meta(d, model="os:system")
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "unknown model 'os:system'")
    d = model_copy("actinn")
    meta = json.loads((d / "meta.json").read_text())
    del meta["classes"]
    meta["meta_sha256"] = _meta_sha256(meta)
    (d / "meta.json").write_text(json.dumps(meta))
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "lacks ['classes']", "damaged")

def test_9_not_a_model_directory(capsys, models, data_dir, tmp_path):
    code, err = predict(capsys, models, data_dir, tmp_path)                   # the results folder, not <model>/model
    assert_error(code, err, "is not a scaml model directory (no meta.json)", "results/<model>/model")

def test_9_intact_models_still_load(capsys, models, data_dir, tmp_path):
    for name in ["lr", "rf", "xgb", "mlp", "actinn"]:
        code, err = predict(capsys, models / name / "model", data_dir, tmp_path)
        assert code == 0, (name, err)

# ------------------------------------------------------------------ 10. argument combinations
def test_10_wrong_argument_combinations(capsys, data_dir, tmp_path):
    src = ["--adata", data_dir / CB10X, "--label-key", "cell_line"]
    o = ["--outdir", tmp_path / "o"]
    cases = [
        ([*src, "--split", "random", "--embedding", "X_pca", "--features", "hvg", *o], "pass one of them"),
        ([*src, "--split", "random", "--models", "lr", "svm", *o], "unknown model(s) ['svm']; available: lr, rf"),
        ([*src, "--dataset", "tm_facs_to_droplet", *o], "pass exactly one of --adata FILE or --dataset NAME"),
        (["--dataset", "nope", *o], "unknown dataset 'nope'; datasets: "),
        ([*src, "--split", "random", "--split-key", "batch", *o], "--split random draws the test cells at random"),
        ([*src, "--split-key", "batch", "--split-test", "sc_10x", *o], "say how to split"),
        ([*src, "--split", "random", "--layer", "counts", *o], "layer='counts' is not in adata.layers"),
    ]
    for argv, phrase in cases:
        code, err = train(capsys, *argv)
        assert_error(code, err, phrase)
    assert not (tmp_path / "o").exists()

def test_10_unknown_model_through_the_console_script(cli, data_dir, tmp_path):
    p = cli("scaml_train", "--adata", data_dir / CB10X, "--label-key", "cell_line", "--split", "random",
            "--models", "svm", "--outdir", tmp_path / "o", check=False)
    assert p.returncode == 1 and "error: unknown model(s) ['svm']" in p.stderr and "Traceback" not in p.stderr
    p = cli("scaml_train", "--adata", data_dir / CB10X, "--class-weight", "equal", "--outdir", tmp_path / "o",
            check=False)                                           # argparse's own usage error
    assert p.returncode == 2 and "invalid choice: 'equal'" in p.stderr and "Traceback" not in p.stderr

# ------------------------------------------------------------------ nothing lost
def test_existing_results_folder_is_kept(capsys, data_dir, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", *FAST, "--outdir", out)
    assert_error(code, err, "already exists", "--overwrite")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    # --overwrite replaces only a folder scaml wrote: a folder of the user's is refused and kept whole
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", *FAST, "--outdir", out, "--overwrite")
    assert_error(code, err, "was not written by scaml", "--outdir")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    scaml_out = tmp_path / "s"
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", *FAST, "--outdir", scaml_out)
    assert code == 0, err
    first = json.loads((scaml_out / "manifest.json").read_text())["files"]
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", *FAST, "--outdir", scaml_out, "--overwrite")
    assert code == 0, err
    assert json.loads((scaml_out / "manifest.json").read_text())["files"] == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "s"]          # no .partial or .old folder left

TASK = ["--dataset", "cellbench_celseq2_to_dropseq", "--models", "lr", "rf", "mlp", "--quiet"]

# the interrupt-while-training test signals when lr has finished, while rf, xgb and mlp still train (seconds of work)
TASK_LONG = ["--dataset", "actinn_tutorial", "--models", "lr", "rf", "xgb", "mlp"]

def _interruptible() -> None:
    "Ctrl-C as at a terminal: a shell's background job (a test run started with `&`) ignores SIGINT, and so would its children."
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def start_train(data_dir, out: Path, task: list[str] = TASK) -> subprocess.Popen:
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    return subprocess.Popen([str(Path(sys.executable).parent / "scaml_train"), *task, "--outdir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_interruptible)

def wait_for_partial(proc: subprocess.Popen, out: Path, timeout: float = 300) -> Path | None:
    "Poll for the `.NAME.partial-PID` folder of `proc`; None if the process ended first."
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        hits = list(out.parent.glob(f".{out.name}.partial-{proc.pid}"))
        if hits: return hits[0]
        if proc.poll() is not None: return None
        time.sleep(0.005)
    raise AssertionError("no .partial folder appeared")

def no_manifest_outside(out: Path) -> None:
    "Only a complete results folder may hold manifest.json."
    for p in out.parent.rglob("manifest.json"):
        assert p.parent == out, p
    assert not out.exists() or (out / "manifest.json").is_file()

@pytest.mark.parametrize("when", ["training", "writing"])
def test_sigint_leaves_nothing(data_dir, tmp_path, when):
    out = tmp_path / "res"
    proc = start_train(data_dir, out, TASK if when == "writing" else TASK_LONG)
    seen = ""
    if when == "writing":
        partial = wait_for_partial(proc, out)
        assert partial is not None, "the run ended before writing"
    else:
        while "lr: accuracy" not in seen:                          # the first model is done, the others train
            line = proc.stderr.readline()
            assert line, f"the run ended before training:\n{seen}"
            seen += line
        assert not list(tmp_path.iterdir()), "results were being written already"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = seen + err
    no_manifest_outside(out)
    if when == "training": assert proc.returncode == 130, err
    if proc.returncode == 0:                                       # the signal came after the rename: complete
        assert (out / "manifest.json").is_file()
    else:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1].startswith("interrupted; "), err
        assert "Traceback" not in err
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []                      # the .partial folder was removed

def test_sigkill_leaves_no_folder_that_looks_complete(data_dir, tmp_path):
    out = tmp_path / "res"
    proc = start_train(data_dir, out)
    partial = wait_for_partial(proc, out)
    assert partial is not None, "the run ended before writing"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    no_manifest_outside(out)
    if not out.exists():                                           # killed before the rename
        left = list(tmp_path.iterdir())
        assert left == [] or (left == [partial] and not (partial / "manifest.json").exists())

# ------------------------------------------------------------------ 2. keys of the other commands
@pytest.mark.parametrize("script,argv,phrase", [
    ("scaml_learning_curve", ["--group-key", "donor"], "group_key='donor' is not a column of adata.obs"),
    ("scaml_novelty", ["--hek-key", "is_hek", "--split-key", "batch", "--split-train", "sc_10x"],
     "'is_hek' is not a column of adata.obs"),
    ("scaml_novelty", ["--hek-key", "cell_line", "--group-key", "donor"], "group_key='donor' is not a column"),
])
def test_2_group_and_hek_keys_absent(cli, data_dir, tmp_path, script, argv, phrase):
    p = cli(script, "--adata", data_dir / CB10X, "--label-key", "cell_line", *argv, "--outdir", tmp_path / "o",
            check=False)
    assert p.returncode == 1, p.stderr
    assert phrase in p.stderr and "available: 'cell_line'" in p.stderr and "'batch'" in p.stderr
    assert "hint: " in p.stderr and "Traceback" not in p.stderr and not (tmp_path / "o").exists()

# ------------------------------------------------------------------ 11. every writer, every output path
from scaml.cli import (scaml_export_seurat, scaml_learning_curve, scaml_matrix,  # noqa: E402
                       scaml_novelty, scaml_plot, scaml_report)

OUT_COMMANDS = {
    "train": (scaml_train, ["--split", "random", *FAST]),
    "matrix": (scaml_matrix, ["--label-key", "cell_line", "--models", "lr", "--quiet"]),
    "learning_curve": (scaml_learning_curve, ["--label-key", "cell_line", "--group-key", "batch", "--quiet"]),
    "novelty": (scaml_novelty, ["--hek-key", "demuxlet_cls", "--quiet"]),
    "report": (scaml_report, ["--split-key", "batch", "--split-train", "a", "--split-test", "b", "--quiet"]),
}

@pytest.mark.parametrize("cmd", list(OUT_COMMANDS))
def test_11_overwrite_never_replaces_cwd_parent_file_or_input(capsys, data_dir, tmp_path, monkeypatch, cmd):
    "`--outdir . --overwrite` and its kin fail at once, before any data is read or model trained."
    f, extra = OUT_COMMANDS[cmd]
    work = tmp_path / "work"; work.mkdir()
    inp = work / "cells.h5ad"; shutil.copy(data_dir / CB10X, inp)
    monkeypatch.chdir(work)
    (work / "notes.txt").write_text("mine")
    cases = [(str(work / "notes.txt"), "is a file"), (str(work / "notes.txt" / "sub"), "is a file")]
    if cmd != "report":
        cases += [(".", "is the current folder or one of its parents"), ("..", "is the current folder or one of its "
                  "parents"), (str(work), "is the current folder")]
    else:                                  # --outdir holds one folder per split: the split folder must not be the cwd
        a_to_b = work / "a_to_b"; a_to_b.mkdir(); monkeypatch.chdir(a_to_b)
        cases += [(str(work), "is the current folder or one of its parents")]
    for out, phrase in cases:
        t = time.perf_counter()
        code, err = run(capsys, f, "--adata", inp, *extra, "--outdir", out, "--overwrite")
        assert_error(code, err, phrase)
        assert "accuracy" not in err and time.perf_counter() - t < 60, err
    assert sorted(p.name for p in work.iterdir()) == sorted(["cells.h5ad", "notes.txt"] + (["a_to_b"] if cmd == "report"
                                                                                          else []))
    assert (work / "notes.txt").read_text() == "mine"

def test_11_train_outdir_holding_the_input_is_refused(capsys, data_dir, tmp_path):
    d = tmp_path / "d"; d.mkdir()
    inp = d / "cells.h5ad"; shutil.copy(data_dir / CB10X, inp)
    code, err = train(capsys, "--adata", inp, "--split", "random", *FAST, "--outdir", d, "--overwrite")
    assert_error(code, err, "--outdir", "holds the input")
    assert inp.is_file()

def test_11_predict_outputs(capsys, models, data_dir, tmp_path):
    "The format follows the file name; the input, a folder, or a file scaml did not write is never replaced."
    inp = tmp_path / "x.h5ad"; shutil.copy(data_dir / CB10X, inp)
    before = inp.read_bytes()
    m = models / "lr" / "model"
    p = lambda *a: run(capsys, scaml_predict, "--model", m, "--adata", inp, "--quiet", *a)    # noqa: E731
    code, err = p("--out", inp, "--overwrite")
    assert_error(code, err, "--out", "is the input", "Choose another --out")
    assert inp.read_bytes() == before
    code, err = p("--h5ad-out", inp, "--overwrite")
    assert_error(code, err, "--h5ad-out", "is the input")
    code, err = p("--out", m / "meta.json", "--overwrite")
    assert_error(code, err, "the output format follows the file name")
    code, err = p("--out", tmp_path / "pred.txt")
    assert_error(code, err, "the output format follows the file name", "'.txt'", ".csv, .h5ad")
    code, err = p("--h5ad-out", tmp_path / "pred.csv")
    assert_error(code, err, "--h5ad-out", "the output format follows the file name")
    (tmp_path / "adir.csv").mkdir()
    code, err = p("--out", tmp_path / "adir.csv", "--overwrite")
    assert_error(code, err, "is a folder")
    mine = tmp_path / "mine.csv"; mine.write_text("my,own\n1,2\n")
    code, err = p("--out", mine, "--overwrite")
    assert_error(code, err, "was not written by scaml", "--overwrite replaces only a file scaml wrote")
    assert mine.read_text() == "my,own\n1,2\n"
    code, err = p("--out", tmp_path / "same.h5ad", "--h5ad-out", tmp_path / "same.h5ad")
    assert_error(code, err, "are the same file")
    code, err = p("--out", tmp_path / "new.h5ad")                       # an .h5ad --out is an AnnData, not a CSV
    assert code == 0, err
    a = anndata.read_h5ad(tmp_path / "new.h5ad")
    assert "scaml_pred" in a.obs and a.n_obs == 895
    code, err = p("--out", tmp_path / "new.h5ad", "--overwrite")        # scaml wrote it: replaced
    assert code == 0, err
    code, err = p("--out", tmp_path / "pred.csv")
    assert code == 0 and pd.read_csv(tmp_path / "pred.csv").columns[0] == "cell"
    code, err = p("--out", tmp_path / "pred.csv", "--overwrite")
    assert code == 0, err
    assert not [q for q in tmp_path.iterdir() if ".partial" in q.name]

def test_11_plot_outdir(capsys, models, tmp_path):
    code, err = run(capsys, scaml_plot, "--results", tmp_path / "nope")
    assert_error(code, err, "--results", "is not a results folder")
    f = tmp_path / "file"; f.write_text("x")
    code, err = run(capsys, scaml_plot, "--results", models, "--outdir", f)
    assert_error(code, err, "--outdir", "is a file")
    out = tmp_path / "figs"; out.mkdir(); (out / "model_compare.png").write_bytes(b"mine")
    code, err = run(capsys, scaml_plot, "--results", models, "--outdir", out)
    assert_error(code, err, "already holds model_compare.png", "--overwrite")
    assert (out / "model_compare.png").read_bytes() == b"mine"
    code, err = run(capsys, scaml_plot, "--results", models, "--outdir", out, "--overwrite", "--quiet")
    assert code == 0, err

def test_11_export_seurat_output_checked_first(capsys, data_dir, tmp_path):
    "--output is checked before R runs: its format, the input itself, a file that is not an .h5ad."
    rds = tmp_path / "obj.rds"; rds.write_bytes(b"x")
    for out, phrase in [(rds, "the output format follows the file name"), (tmp_path / "o.csv", "format follows"),
                        (tmp_path, "format follows")]:
        with pytest.raises(SystemExit) as e:
            scaml_export_seurat(["--input", str(rds), "--output", str(out), "--overwrite", "--rscript", "no-such-R"])
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert phrase in err and "Traceback" not in err, err
    h5 = tmp_path / "mine.h5ad"; h5.write_text("not an anndata file")
    with pytest.raises(SystemExit):
        scaml_export_seurat(["--input", str(rds), "--output", str(h5), "--overwrite", "--rscript", "no-such-R"])
    assert "was not written by scaml" in capsys.readouterr().err and h5.read_text() == "not an anndata file"

# ------------------------------------------------------------------ 12. leakage between training and test files
def test_12_test_cells_inside_the_training_file(capsys, cb, write, tmp_path):
    a = write(cb, "a")
    b = write(cb[cb.obs.cell_line == "H1975"].copy(), "b")
    code, err = train(capsys, "--adata", a, "--adata-test", b, *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "test cells are also training cells", "310 test cells share a name", "--allow-overlap")
    assert not (tmp_path / "o").exists()
    renamed = cb[cb.obs.cell_line == "H1975"].copy()
    renamed.obs_names = [f"other{i}" for i in range(renamed.n_obs)]            # new names, the same counts
    code, err = train(capsys, "--adata", a, "--adata-test", write(renamed, "r"), *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "0 test cells share a name", "310 of 310 sampled test cells have the same expression")
    code, err = train(capsys, "--adata", a, "--adata-test", b, *FAST, "--outdir", tmp_path / "o", "--allow-overlap")
    assert code == 0, err
    assert any("test cells are also training cells" in w for w in warnings_of(err))
    ov = json.loads((tmp_path / "o" / "manifest.json").read_text())["overlap"]
    assert ov["overlap"] and ov["allowed"] and ov["n_shared_names"] == 310

def test_12_disjoint_files_record_the_check(capsys, cb, write, tmp_path):
    a = write(cb[cb.obs.cell_line != "H1975"].copy(), "a")
    rest = cb[cb.obs.cell_line == "H1975"].copy()
    rest.obs["cell_line"] = rest.obs["cell_line"].astype(str)
    both = anndata.concat([cb[cb.obs.cell_line == "H2228"][:50], rest])
    code, err = train(capsys, "--adata", a, "--adata-test", write(both, "b"), *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "50 test cells share a name")
    code, err = train(capsys, "--adata", write(cb, "x"), "--split", "random", *FAST,
                      "--outdir", tmp_path / "r")
    assert code == 0, err
    ov = json.loads((tmp_path / "r" / "manifest.json").read_text())["overlap"]
    assert ov == {**ov, "overlap": False, "allowed": False, "profiles": "checked"} and ov["n_profiles_checked"] > 0

# ------------------------------------------------------------------ 13. meta.json inside the checksum
def test_13_swapped_class_names_refused(capsys, model_copy, data_dir, tmp_path):
    for name in ["lr", "xgb", "actinn"]:
        d = model_copy(name)
        meta = json.loads((d / "meta.json").read_text())
        meta["classes"][0], meta["classes"][1] = meta["classes"][1], meta["classes"][0]
        edit_meta(d, sign=False, classes=meta["classes"])
        code, err = predict(capsys, d, data_dir, tmp_path)
        assert_error(code, err, "does not match its checksum (meta_sha256)", "class names", "Refusing to load it")
    d = model_copy("rf")
    meta = json.loads((d / "meta.json").read_text())
    edit_meta(d, sign=False, backend={**meta["backend"], "random_state": 7})
    code, err = predict(capsys, d, data_dir, tmp_path)
    assert_error(code, err, "does not match its checksum (meta_sha256)")

# ------------------------------------------------------------------ 14. rejection metrics, the reserved class
def test_14_rejection_metrics_count_labelled_cells_only(capsys, cb, write, tmp_path):
    a = cb.copy()
    a.obs["part"] = pd.Categorical(np.array(["p0", "p1", "p2", "p3"])[np.arange(a.n_obs) % 4])
    a.obs["novel"] = (a.obs.cell_line == "HCC827").to_numpy()
    lab = a.obs.cell_line.astype(object).to_numpy()
    test_known = np.flatnonzero((a.obs.part == "p3").to_numpy() & ~a.obs.novel.to_numpy())
    lab[test_known[:30]] = np.nan
    a.obs["cell_line"] = pd.Categorical(lab)
    code, err = run(capsys, scaml_novelty, "--adata", write(a, "n"), "--flag-key", "novel", "--group-key", "part",
                    "--test-groups", "p3", "--method", "maxproba", "--model", "lr", "--label-key", "cell_line",
                    "--reject", "--n-top-genes", "300", "--no-plots", "--quiet", "--outdir", tmp_path / "o")
    assert code == 0, err
    met = json.loads((tmp_path / "o" / "rejection" / "metrics.json").read_text())
    assert "" not in met["unseen_by_class"] and met["n_unlabelled"] == 30
    assert list(met["unseen_by_class"]) == ["novel:HCC827"]
    assert met["n_unseen"] == int(a[a.obs.part == "p3"].obs.novel.sum())

def test_14_training_class_named_unknown(capsys, cb, write, tmp_path):
    a = cb.copy()
    a.obs["cell_line"] = a.obs.cell_line.cat.rename_categories({"H1975": "unknown"})
    code, err = train(capsys, "--adata", write(a, "u"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "labelled 'unknown' in obs['cell_line']", "reserved", "Rename the class")

# ------------------------------------------------------------------ 15. where the counts are
def test_15_counts_in_a_layer_with_x_none(capsys, cb, write, tmp_path):
    a = anndata.AnnData(X=None, obs=cb.obs.copy(), var=cb.var.copy(), layers={"counts": cb.X.copy()})
    code, err = train(capsys, "--adata", write(a, "xnone"), "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert code == 0, err                                        # not blamed on SeuratDisk: the counts layer is used
    b = anndata.AnnData(X=None, obs=cb.obs.copy(), var=cb.var.copy(), layers={"umi": cb.X.copy()})
    code, err = train(capsys, "--adata", write(b, "umi"), "--split", "random", *FAST, "--outdir", tmp_path / "p")
    assert_error(code, err, "adata.X is None", "layers ['umi']", "layer='umi' (--layer umi)")
    code, err = train(capsys, "--adata", write(b, "umi"), "--split", "random", *FAST, "--layer", "umi",
                      "--outdir", tmp_path / "p")
    assert code == 0, err

def test_15_scaled_x_with_counts_in_raw(capsys, cb, write, tmp_path):
    a = cb.copy()
    a.raw = a
    X = a.X.toarray(); a.X = (X - X.mean(0)) / (X.std(0) + 1)                   # scaled: negative values
    p = write(a, "scaled")
    code, err = train(capsys, "--adata", p, "--split", "random", *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "X holds negative values", ".raw with 894 genes", "layer='raw' (--layer raw)")
    assert "--layer counts" not in err                                 # no hint that leads nowhere
    code, err = train(capsys, "--adata", p, "--split", "random", *FAST, "--layer", "counts", "--outdir", tmp_path / "o")
    assert_error(code, err, "layer='counts' is not in adata.layers", "layer='raw' (--layer raw)")
    code, err = train(capsys, "--adata", p, "--split", "random", *FAST, "--layer", "raw", "--outdir", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["input_kind"] == "counts"

# ------------------------------------------------------------------ 16. flag values, named, before any reading
@pytest.mark.parametrize("f,argv,phrase", [
    (scaml_train, ["--n-top-genes", "0"], "--n-top-genes 0 is out of range"),
    (scaml_train, ["--n-top-genes", "many"], "--n-top-genes takes a whole number, got 'many'"),
    (scaml_train, ["--test-size", "0"], "--test-size 0 is out of range"),
    (scaml_train, ["--test-size", "1.5"], "--test-size 1.5 is out of range"),
    (scaml_train, ["--random-state", "-1"], "--random-state -1 is out of range"),
    (scaml_train, ["--block-size", "0"], "--block-size 0 is out of range"),
    (scaml_train, ["--dask-workers", "0"], "--dask-workers 0 is out of range"),
    (scaml_train, ["--layer", " "], "--layer ' ' is not a name"),
    (scaml_matrix, ["--cv-folds", "-1"], "--cv-folds -1 is out of range"),
    (scaml_learning_curve, ["--group-key", "batch", "--fractions", "0"], "--fractions 0 is out of range"),
    (scaml_learning_curve, ["--group-key", "batch", "--n-repeats", "0"], "--n-repeats 0 is out of range"),
    (scaml_learning_curve, ["--group-key", "batch", "--n-groups", "0"], "--n-groups 0 is out of range"),
    (scaml_novelty, ["--hek-key", "x", "--coverage", "1.5"], "--coverage 1.5 is out of range"),
    (scaml_novelty, ["--hek-key", "x", "--n-components", "0"], "--n-components 0 is out of range"),
    (scaml_report, ["--timeout", "0"], "--timeout 0 is out of range"),
])
def test_16_bad_flag_values_name_the_flag(capsys, tmp_path, f, argv, phrase):
    with pytest.raises(SystemExit) as e:
        f(["--adata", str(tmp_path / "never_read.h5ad"), *argv, "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and phrase in err and "Traceback" not in err, err

def test_16_plot_and_predict_flags(capsys, tmp_path):
    for f, argv, phrase in [(scaml_plot, ["--results", "r", "--dpi", "0"], "--dpi 0 is out of range"),
                            (scaml_predict, ["--model", "m", "--adata", "a", "--key-added", ""], "--key-added '' is not")]:
        with pytest.raises(SystemExit) as e:
            f(argv)
        assert e.value.code == 2 and phrase in capsys.readouterr().err

@pytest.mark.parametrize("f,argv,phrase", [
    (scaml_matrix, ["--cv-folds", "1"], "--cv-folds 1 leaves no cells to test on"),
    (scaml_matrix, ["--models", "svm"], "unknown model(s) ['svm']; available: lr, rf, xgb, mlp, actinn, actinn_deepchem, singler, knn, "
         "scanvi. Fix --models"),
    (scaml_matrix, ["--filter", "qc"], "KEY=VALUE"),
    (scaml_learning_curve, ["--group-key", "batch", "--model", "svm"], "Fix --model"),
    (scaml_novelty, ["--hek-key", "x", "--model", "svm"], "--model 'svm' is neither a saved model folder"),
    (scaml_report, ["--split-key", "b", "--split-train", "a", "--split-test", "c", "--models", "svm"], "unknown model"),
])
def test_16_bad_values_refused_before_reading(capsys, tmp_path, f, argv, phrase):
    "The input does not exist: the error proves that the flag was checked before any reading."
    code, err = run(capsys, f, "--adata", tmp_path / "never_read.h5ad", *argv, "--outdir", tmp_path / "o")
    assert_error(code, err, phrase)

def test_16_test_file_errors_name_the_file(capsys, cb, write, tmp_path):
    a = write(cb[cb.obs.cell_line != "H1975"].copy(), "train_part")
    t = cb[cb.obs.cell_line == "H1975"].copy()
    t.obs = t.obs.rename(columns={"cell_line": "line"})
    b = write(t, "test_part")
    code, err = train(capsys, "--adata", a, "--adata-test", b, *FAST, "--outdir", tmp_path / "o")
    assert_error(code, err, "is not a column of adata_test.obs (the --adata-test file", "test_part.h5ad", "'line'")

def test_16_gene_overlap_examples_differ(capsys, cb, models, write, tmp_path):
    a = cb.copy()
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    code, err = run(capsys, scaml_predict, "--model", models / "lr" / "model", "--adata", write(a, "ens"),
                    "--out", tmp_path / "p.csv")
    assert_error(code, err, "model genes missing from the data", "data genes the model does not know ['ENSG")

# ------------------------------------------------------------------ 17. SIGTERM behaves as SIGINT
def test_17_sigterm_while_writing_leaves_nothing(data_dir, tmp_path):
    out = tmp_path / "res"
    proc = start_train(data_dir, out)
    partial = wait_for_partial(proc, out)
    assert partial is not None, "the run ended before writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    no_manifest_outside(out)
    if proc.returncode == 0:                                       # the signal came after the rename: complete
        assert (out / "manifest.json").is_file()
    else:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1].startswith("interrupted; "), err
        assert "Traceback" not in err
        assert list(tmp_path.iterdir()) == []                      # no .NAME.partial-PID folder left

# ------------------------------------------------------------------ 18. Python API arguments of the wrong type
def test_18_api_arguments_of_the_wrong_type():
    import scaml
    from scaml.data import toy_adata
    from scaml.preprocess import Preprocessor
    ad = toy_adata(n_obs=120, n_vars=60, n_classes=3)
    model = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=30)).fit(ad)
    cases = [
        (lambda: scaml.run_benchmark(ad, split_key="batch", train="b0", n_top_genes="50"), TypeError,
         "n_top_genes='50' (str): pass an integer"),
        (lambda: scaml.run_benchmark(ad, split_key="batch", train=["b0"], random_state=-1), ValueError,
         "random_state=-1 is out of range"),
        (lambda: scaml.run_benchmark(ad, split_key="batch", train=0), TypeError, "train=0 (int): pass a name"),
        (lambda: scaml.run_matrix(ad, split_key="batch", cv_folds="2", models=["lr"]), TypeError, "cv_folds='2'"),
        (lambda: scaml.run_matrix(ad, split_key="batch", groups=5), TypeError, "groups=5 (int)"),
        (lambda: scaml.learning_curve(ad, group_key="batch", fractions="0.5"), TypeError, "fractions='0.5': pass a list"),
        (lambda: scaml.learning_curve(ad, group_key="batch", n_groups=[0]), ValueError, "n_groups[...]=0 is out of range"),
        (lambda: scaml.fit_rejection(ad, label_key="cell_type", coverage="0.9"), TypeError, "coverage='0.9' (str)"),
        (lambda: Preprocessor(n_top_genes="10"), TypeError, "n_top_genes='10' (str)"),
        (lambda: Preprocessor(layer=3), TypeError, "layer=3 (int)"),
        (lambda: model.predict(np.zeros((2, 60))), TypeError, "adata is a ndarray, not an AnnData"),
        (lambda: model.predict(ad.to_df()), TypeError, "adata is a DataFrame, not an AnnData"),
        (lambda: scaml.annotate(ad.to_df(), model), TypeError, "adata=DataFrame: pass an AnnData"),
        (lambda: model.fit(ad, label_key=["cell_type"]), TypeError, "label_key=['cell_type']: pass the name"),
    ]
    for call, exc, phrase in cases:
        with pytest.raises(exc) as e:
            call()
        assert phrase in str(e.value), (phrase, str(e.value))
