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
from scaml.models import CellTypeModel, _meta_sha256, _sha256

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

def assert_error(code: int, err: str, *phrases: str) -> None:
    "Exit 1, exactly one `error:` line with every phrase, a hint, no traceback."
    assert code == 1, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert "hint: " in err and "Traceback" not in err, err
    for p in phrases:
        assert p in errors[0], (p, errors[0])

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
    shutil.copy(data_dir / "cellbench_lung_celllines" / "DATA.md", bad)      # a text file named .h5ad
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
    assert_error(code, err, "X holds negative values (minimum", "--layer counts")

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
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(ens, "ens"), *FAST,
                      "--outdir", tmp_path / "o")
    assert_error(code, err, "only 0 of the model's 894 genes are in adata.var_names (0.0%, minimum 50%)",
                  "symbols vs Ensembl IDs")
    part = cb[:, 400:].copy()                                                      # 494 of 894 genes: 55%
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(part, "part"), *FAST,
                      "--outdir", tmp_path / "o")
    assert code == 0, err
    assert any("400 of 894 model genes (44.7%) are missing from the data and set to 0" in w for w in warnings_of(err))
    ov = json.loads((tmp_path / "o" / "manifest.json").read_text())["gene_overlap"]
    assert (ov["n_features"], ov["n_missing"]) == (894, 400)
    part = cb[:, 500:].copy()                                                      # 394 of 894: 44%, below 50%
    code, err = train(capsys, "--adata", data_dir / CB10X, "--adata-test", write(part, "part2"), *FAST,
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
    code, err = train(capsys, "--adata", data_dir / CB10X, "--split", "random", "--n-hvg", "0", *FAST,
                      "--outdir", tmp_path / "o2")
    assert_error(code, err, "n_top_genes=0 (--n-hvg) must be at least 1")

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
        ([*src, "--split", "random", "--test-size", "1.5", *o], "test_size=1.5 must be between 0 and 1"),
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

def start_train(data_dir, out: Path, task: list[str] = TASK) -> subprocess.Popen:
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    return subprocess.Popen([str(Path(sys.executable).parent / "scaml_train"), *task, "--outdir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

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
