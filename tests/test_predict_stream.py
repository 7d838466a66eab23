"""Streaming prediction on real cells: a backed AnnData in the Python API and `scaml_predict --backed` give exactly the
predictions of the in-memory path (lr, actinn, calibration, rejection, an input scale detected from the values), write
their outputs atomically, and a full disk ends in one error line with nothing partial left."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import scaml.models
import scaml.predict_stream
from scaml.calibration import TemperatureScaler
from scaml.models import CellTypeModel, annotate
from scaml.predict_stream import annotate_h5ad
from scaml.preprocess import Preprocessor

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def kang(data_dir) -> dict:
    "Kang PBMC: a model trained on the control cells, the stimulated cells as a query file (counts, and log1p)."
    d = data_dir / "muscat_kang_ifnb" / "muscat_kang_ifnb.h5ad"
    a = anndata.read_h5ad(d)
    return {"ctrl": a[a.obs.batch == "ctrl"].copy(), "stim": a[a.obs.batch == "stim"].copy(), "path": d}


@pytest.fixture(scope="module")
def query(kang, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("q") / "stim.h5ad"
    kang["stim"].write_h5ad(p)
    return p


@pytest.fixture(scope="module")
def lr(kang) -> CellTypeModel:
    return CellTypeModel("lr").fit(kang["ctrl"], label_key="label")


@pytest.fixture
def small_blocks(monkeypatch):
    "Blocks of 100 cells, so that the 778 query cells span eight blocks (the last one short)."
    monkeypatch.setattr(scaml.models, "STREAM_BLOCK", 100)


def test_backed_predict_is_the_in_memory_predict(kang, query, lr, small_blocks):
    mem = anndata.read_h5ad(query)
    backed = anndata.read_h5ad(query, backed="r")
    pd.testing.assert_frame_equal(lr.predict_proba(backed), lr.predict_proba(mem), check_exact=True)
    pd.testing.assert_series_equal(lr.predict(backed), lr.predict(mem))
    annotate(backed, lr)
    ref = annotate(mem, lr, copy=True)
    assert backed.isbacked
    pd.testing.assert_frame_equal(backed.obs, ref.obs)
    pd.testing.assert_frame_equal(backed.obsm["scaml_proba"], ref.obsm["scaml_proba"], check_exact=True)
    assert (lr.predict(mem).astype(str) == mem.obs["label"]).mean() > 0.85      # a real prediction, not a constant


def test_backed_copy_is_refused(query, lr):
    backed = anndata.read_h5ad(query, backed="r")
    with pytest.raises(ValueError, match="copy=True would read the backed file"):
        annotate(backed, lr, copy=True)


def test_fit_on_backed_reads_it_sparse(kang, tmp_path):
    p = tmp_path / "ctrl.h5ad"
    kang["ctrl"].write_h5ad(p)
    backed = anndata.read_h5ad(p, backed="r")
    m = CellTypeModel("lr").fit(backed, label_key="label")
    ref = CellTypeModel("lr").fit(kang["ctrl"], label_key="label")
    np.testing.assert_array_equal(m.backend.W_, ref.backend.W_)
    assert backed.isbacked                       # the user's object is left as it was


def test_input_scale_detected_once_on_the_whole_file(kang, lr, tmp_path, small_blocks):
    """A log1p query: detected per block the scale could change between blocks; it is detected once, on the rows the
    in-memory path samples, and the predictions are the in-memory ones."""
    import scanpy as sc
    q = kang["stim"].copy()
    sc.pp.normalize_total(q, target_sum=1e4)
    sc.pp.log1p(q)
    p = tmp_path / "log1p.h5ad"
    q.write_h5ad(p)
    backed = anndata.read_h5ad(p, backed="r")
    X = backed.X
    pp = scaml.models.stream_preprocessor(lr.preprocessor, X, backed.var_names)
    assert pp.input_scale == "log1p" and lr.preprocessor.input_scale == "auto"
    pd.testing.assert_frame_equal(lr.predict_proba(backed), lr.predict_proba(anndata.read_h5ad(p)), check_exact=True)


def test_actinn_and_calibration_stream(kang, query, tmp_path, small_blocks):
    m = CellTypeModel("actinn", max_epochs=5).fit(kang["ctrl"], label_key="label")
    P = m.predict_proba(kang["ctrl"]).to_numpy()
    y = pd.Index(m.classes_).get_indexer(kang["ctrl"].obs["label"].astype(str))
    m.calibrator = TemperatureScaler().fit(P, y)
    mem = anndata.read_h5ad(query)
    annotate_h5ad(query, m, csv=tmp_path / "a.csv", h5ad=tmp_path / "a.h5ad", block_size=100)
    ref = annotate(mem, m, copy=True)
    got = anndata.read_h5ad(tmp_path / "a.h5ad")
    assert got.obs["scaml_pred"].tolist() == ref.obs["scaml_pred"].tolist()
    # ACTINN computes in float32; BLAS may sum a 100-cell block in another order than the whole query (~1e-9 apart)
    np.testing.assert_allclose(got.obsm["scaml_proba"], ref.obsm["scaml_proba"].to_numpy(), rtol=0, atol=1e-7)
    assert not np.allclose(ref.obsm["scaml_proba"].to_numpy(), m.backend.predict_proba(          # calibration applied
        m.preprocessor.transform(mem)))


@pytest.mark.parametrize("score", ["proba", "iforest"])
def test_rejection_streams(kang, query, tmp_path, small_blocks, score):
    from scaml.rejection import fit_rejection
    rm = fit_rejection(kang["ctrl"], label_key="label", score=score, coverage=0.9, n_top_genes=500)
    mem, backed = anndata.read_h5ad(query), anndata.read_h5ad(query, backed="r")
    ref = annotate(mem, rm, copy=True)
    annotate(backed, rm)
    pd.testing.assert_frame_equal(backed.obs, ref.obs)
    assert (ref.obs["scaml_pred"] == "unknown").sum() > 0
    counts = annotate_h5ad(query, rm, csv=tmp_path / "r.csv", block_size=100)
    t = pd.read_csv(tmp_path / "r.csv", index_col="cell")
    assert t["label"].tolist() == ref.obs["scaml_pred"].astype(str).tolist()
    np.testing.assert_allclose(t["novelty"], ref.obs["scaml_novelty"], rtol=1e-5)
    assert counts["unknown"] == (ref.obs["scaml_pred"] == "unknown").sum()


def test_dense_and_by_gene_files(kang, lr, tmp_path, cli, small_blocks):
    "A dense X streams; an X stored by gene (CSC) is read into memory by the API and refused by --backed, with the fix."
    import scipy.sparse as sp
    ref = lr.predict_proba(kang["stim"])
    for name, X in [("dense", kang["stim"].X.toarray()), ("csc", sp.csc_matrix(kang["stim"].X))]:
        a = kang["stim"].copy()
        a.X = X
        a.write_h5ad(tmp_path / f"{name}.h5ad")
        pd.testing.assert_frame_equal(lr.predict_proba(anndata.read_h5ad(tmp_path / f"{name}.h5ad", backed="r")), ref,
                                      check_exact=True)
    lr.save(tmp_path / "m")
    cli("scaml_predict", "--model", tmp_path / "m", "--adata", tmp_path / "dense.h5ad", "--out", tmp_path / "d.csv",
        "--backed")
    assert pd.read_csv(tmp_path / "d.csv", index_col="cell")["label"].tolist() == \
        list(np.asarray(lr.classes)[ref.to_numpy().argmax(1)])
    p = cli("scaml_predict", "--model", tmp_path / "m", "--adata", tmp_path / "csc.h5ad", "--out", tmp_path / "c.csv",
            "--backed", check=False)
    assert p.returncode == 1 and "by gene (CSC)" in p.stderr and "tocsr()" in p.stderr and not (tmp_path / "c.csv").exists()


def test_whole_query_preprocessing(kang, query, tmp_path, cli):
    "scale_by='query' needs every cell at once: the API reads a backed query into memory, --backed refuses."
    m = CellTypeModel("lr", preprocessor=Preprocessor(scale_by="query")).fit(kang["ctrl"], label_key="label")
    pd.testing.assert_frame_equal(m.predict_proba(anndata.read_h5ad(query, backed="r")),
                                  m.predict_proba(anndata.read_h5ad(query)))
    m.save(tmp_path / "m")
    p = cli("scaml_predict", "--model", tmp_path / "m", "--adata", query, "--out", tmp_path / "p.csv", "--backed",
            check=False)
    assert p.returncode == 1 and "needs the whole query at once" in p.stderr and not (tmp_path / "p.csv").exists()
    cli("scaml_predict", "--model", tmp_path / "m", "--adata", query, "--out", tmp_path / "p.csv")   # auto: in memory


def test_cli_backed_writes_what_memory_writes(kang, query, lr, tmp_path, cli):
    lr.save(tmp_path / "m")
    for mode in ["no", "yes"]:
        cli("scaml_predict", "--model", tmp_path / "m", "--adata", query, "--out", tmp_path / f"{mode}.csv",
            "--h5ad-out", tmp_path / f"{mode}.h5ad", "--backed", mode, "--quiet")
    assert (tmp_path / "no.csv").read_bytes() == (tmp_path / "yes.csv").read_bytes()
    a, b = anndata.read_h5ad(tmp_path / "no.h5ad"), anndata.read_h5ad(tmp_path / "yes.h5ad")
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.obsm["scaml_proba"], b.obsm["scaml_proba"])
    assert (a.X != b.X).nnz == 0 and list(a.uns["scaml_classes"]) == list(b.uns["scaml_classes"])
    assert list(a.uns["scaml"]["features_used"]) == list(b.uns["scaml"]["features_used"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "no.csv", "no.h5ad", "yes.csv", "yes.h5ad"]


def test_failure_leaves_no_partial_file(query, lr, tmp_path, monkeypatch):
    calls = []
    real = scaml.predict_stream.predict_block
    def fail_on_third(model, block):
        calls.append(1)
        if len(calls) == 3: raise RuntimeError("boom")
        return real(model, block)
    monkeypatch.setattr(scaml.predict_stream, "predict_block", fail_on_third)
    with pytest.raises(RuntimeError, match="boom"):
        annotate_h5ad(query, lr, csv=tmp_path / "p.csv", h5ad=tmp_path / "p.h5ad", block_size=100)
    assert list(tmp_path.iterdir()) == []


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try: r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError: return False
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    "A real 1 MB file system (tmpfs; needs root), unmounted afterwards."
    d = tmp_path / "disk"
    if not _mount_tmpfs(d, "1M"): pytest.skip("cannot mount a tmpfs here (not root); the file-size limit test covers it")
    yield d
    subprocess.run(["umount", str(d)], check=False)


def _one_error(p: subprocess.CompletedProcess, name: str) -> None:
    assert p.returncode == 1, (p.returncode, p.stderr)                # not a crash (a segfault is -11)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no space left to write" in errors[0] and name in errors[0], p.stderr
    assert "Traceback" not in p.stderr and "HDF5-DIAG" not in p.stderr, p.stderr


@pytest.mark.parametrize("backed", ["no", "yes"])
def test_disk_full_h5ad(kang, lr, tmp_path, small_disk, cli, backed):
    "The annotated Kang file (1.4 MB) on a 1 MB disk: refused before writing (--backed) or stopped mid-write (in memory)."
    lr.save(tmp_path / "m")
    p = cli("scaml_predict", "--model", tmp_path / "m", "--adata", kang["path"], "--out", tmp_path / "p.csv",
            "--h5ad-out", small_disk / "annotated.h5ad", "--backed", backed, check=False)
    _one_error(p, "annotated.h5ad")
    assert "free" in p.stderr and list(small_disk.iterdir()) == []


def test_disk_full_mid_write(kang, query, lr, tmp_path, small_disk, cli):
    """The space check passes (the CSV's size is a lower bound), then the disk fills while the CSV is written, with the
    annotated .h5ad open on another disk: both partial files are removed."""
    lr.save(tmp_path / "m")
    n, k = kang["stim"].n_obs, len(lr.classes)
    free = scaml.predict_stream.free_bytes(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (free - n * (12 + 3 * k) - 8192))
    p = cli("scaml_predict", "--model", tmp_path / "m", "--adata", query, "--out", small_disk / "p.csv",
            "--h5ad-out", tmp_path / "annotated.h5ad", "--backed", check=False)
    _one_error(p, "p.csv")
    assert sorted(x.name for x in small_disk.iterdir()) == ["filler"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["disk", "m"]


def test_disk_full_while_copying(kang, lr, small_disk, monkeypatch):
    "Another process takes the space after the check: the copy of the query stops, nothing is left, one clear error."
    monkeypatch.setattr(scaml.predict_stream, "check_space", lambda need: None)
    with pytest.raises(scaml.predict_stream.DiskFullError, match="no space left to write .*annotated.h5ad"):
        annotate_h5ad(kang["path"], lr, h5ad=small_disk / "annotated.h5ad")
    assert list(small_disk.iterdir()) == []


def test_file_size_limit(query, lr, tmp_path):
    "Without a small disk: a file-size limit (RLIMIT_FSIZE) in a child process stops the CSV the same way."
    lr.save(tmp_path / "m")
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); from scaml.cli import scaml_predict; "
            f"sys.exit(scaml_predict(['--model', r'{tmp_path / 'm'}', '--adata', r'{query}', '--out', "
            f"r'{tmp_path / 'out' / 'p.csv'}', '--backed']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert p.returncode == 1, p.stderr
    assert "no space left to write" in p.stderr and "file-size limit" in p.stderr and "Traceback" not in p.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.slow
def test_100k_cells_backed_is_in_memory(data_dir, tmp_path, cli):
    "100,000 droplet cells resampled from real ones: --backed writes the in-memory CSV byte for byte (lr, actinn)."
    from scaml.streaming import resample_counts
    src = anndata.read_h5ad(data_dir / "actinn_tm_droplet" / "actinn_tm_droplet.h5ad")
    key = "cell_type" if "cell_type" in src.obs else src.obs.columns[0]
    q = resample_counts(src, 100_000, tmp_path / "q.h5ad", keep_obs=[key], shuffle=True)
    for name, kw in [("lr", {}), ("actinn", {"max_epochs": 5})]:
        CellTypeModel(name, **kw).fit(src, label_key=key).save(tmp_path / name)
        for mode in ["no", "yes"]:
            cli("scaml_predict", "--model", tmp_path / name, "--adata", q, "--out", tmp_path / f"{name}_{mode}.csv",
                "--backed", mode, "--quiet")
        assert (tmp_path / f"{name}_no.csv").read_bytes() == (tmp_path / f"{name}_yes.csv").read_bytes(), name
