"""Every registered dataset downloads, checks and builds from a local HTTP server standing in for the internet.

The server serves a mirror written by scripts/data_mirror.py from the datasets the tests use: the original files whose
upstream bytes are here (DeepChem's four files, ACTINN's train_set.h5 and train_label.txt.gz) are served unchanged and
checked against the registered sha256; the others (sc_mixology's CSVs, Cepo's cellbench.rda, muscat's example_sce.rda, ACTINN's
train_set.csv.gz, the celltypist and scanpy wheels) are recreated with the same data, so their checksums are the
mirror's. Every built dataset is checked against its registered content checksum either way. No real URL is used.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import time
from pathlib import Path

import anndata
import numpy as np
import pytest
import scipy.sparse as sp

import scaml.datasets as sd

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("data_mirror", ROOT / "scripts" / "data_mirror.py")
data_mirror = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data_mirror)

# the original files served with their upstream bytes, checked against the registered (upstream) sha256
UPSTREAM_BYTES = {"train_sample.h5", "train_label_sample.txt", "test_sample.h5", "test_label_sample.txt",
                  "train_set.h5", "train_label.txt.gz"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("mirror")
    t = time.perf_counter()
    recreated = data_mirror.write_mirror(data_dir, out)
    print(f"mirror written in {time.perf_counter() - t:.1f}s")
    httpd, url = data_mirror.serve(out)
    yield out, url, recreated
    httpd.shutdown()


@pytest.fixture
def offline_clone(monkeypatch, tmp_path, mirror):
    "An empty cache, SCAML_DATA_DIR unset, downloads from the mirror, and scanpy's file not taken from the package."
    out, url, _ = mirror
    monkeypatch.delenv("SCAML_DATA_DIR", raising=False)
    monkeypatch.setenv("SCAML_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCAML_DATA_URL", url)
    monkeypatch.setattr(sd, "_scanpy_pbmc_file", lambda: None)
    return tmp_path / "cache"


def test_mirror_keeps_upstream_bytes_where_known(mirror, data_dir):
    out, _, recreated = mirror
    reg = data_mirror.mirror_registry(out)
    # built from ../shared/data (with DATA.md files), the files without upstream bytes are recreated; built from a cache
    # that a mirror filled, they are copied from there
    from_shared = (data_dir / "actinn_tm_droplet" / "DATA.md").exists()
    for name, ds in sd.DATASETS.items():
        for f, g in zip(ds.files, reg[name].files):
            if f.name in UPSTREAM_BYTES:
                assert f.sha256 is not None and g.sha256 == f.sha256, f.name
            else:
                if from_shared: assert f.name in recreated, f.name
    assert not set(recreated) & UPSTREAM_BYTES


@pytest.mark.parametrize("name", list(sd.DATASETS))
def test_every_dataset_downloads_checks_and_builds(name, mirror, offline_clone, monkeypatch, data_dir):
    out, _, _ = mirror
    monkeypatch.setattr(sd, "DATASETS", data_mirror.mirror_registry(out))
    ds = sd.DATASETS[name]
    assert not offline_clone.exists()
    t = time.perf_counter()
    a = sd.load_dataset(name)
    print(f"{name}: downloaded, checked and built in {time.perf_counter() - t:.1f}s")
    assert sd.content_sha256(a, ds.label_key) == ds.content_sha256
    for f in ds.files:   # every original file is in the cache, with the checksum it was checked against
        assert sd.file_sha256(offline_clone / Path(ds.path).parent / "original" / f.name) == f.sha256
    assert (offline_clone / ds.path).exists() and (offline_clone / (ds.path + ".sha256")).exists()
    ref = anndata.read_h5ad(data_dir / ds.path)
    built = anndata.read_h5ad(offline_clone / ds.path)   # as written: same cells, genes, values and columns
    assert list(built.obs.columns) == list(ref.obs.columns) and list(built.var.columns) == list(ref.var.columns)
    for c in ref.obs:
        assert built.obs[c].dtype == ref.obs[c].dtype, c
        assert (built.obs[c].astype(str).to_numpy() == ref.obs[c].astype(str).to_numpy()).all(), c
    for c in ref.var:
        assert (built.var[c].astype(str).to_numpy() == ref.var[c].astype(str).to_numpy()).all(), c
    diff = built.X - ref.X
    assert (abs(diff).max() if hasattr(diff, "nnz") else np.abs(diff).max()) == 0
    # a second load reads the cache: nothing is downloaded again
    monkeypatch.setenv("SCAML_DATA_URL", "http://127.0.0.1:1")
    assert sd.load_dataset(name).shape == a.shape


def test_corrupt_download_is_refused(mirror, offline_clone, monkeypatch, tmp_path):
    "A served file that differs from its registered sha256 is refused, named with both checksums, and not kept."
    out, _, _ = mirror
    bad = tmp_path / "bad_mirror"
    shutil.copytree(out / "deepchem_actinn_tm_facs", bad / "deepchem_actinn_tm_facs")
    p = bad / "deepchem_actinn_tm_facs/original/test_sample.h5"
    b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))
    httpd, url = data_mirror.serve(bad)
    monkeypatch.setenv("SCAML_DATA_URL", url)
    expected = next(f.sha256 for f in sd.DATASETS["deepchem_actinn_tm_facs"].files if f.name == "test_sample.h5")
    try:
        with pytest.raises(ValueError) as e:
            sd.load_dataset("deepchem_actinn_tm_facs")
    finally:
        httpd.shutdown()
    msg = str(e.value)
    assert "'test_sample.h5'" in msg and f"expected sha256 {expected}" in msg and f"got {sd.file_sha256(p)}" in msg
    orig = offline_clone / "deepchem_actinn_tm_facs/original"
    assert not (orig / "test_sample.h5").exists() and not list(orig.glob("*.part*"))
    assert not (offline_clone / sd.DATASETS["deepchem_actinn_tm_facs"].path).exists()


def test_corrupt_rda_fails_the_content_check(mirror, offline_clone, monkeypatch, tmp_path):
    "cellbench.rda has no upstream checksum here: a different file is caught by the built dataset's content checksum."
    out, _, _ = mirror
    bad = tmp_path / "bad_mirror"
    shutil.copytree(out / "cellbench_lung_celllines", bad / "cellbench_lung_celllines")
    sce = data_mirror.S4
    ref = sd.read_sce_rda(out / "cellbench_lung_celllines/original/cellbench.rda")
    m = sp.csc_matrix(ref.X.T)
    m.data[0] += 1   # one count changed
    counts = sce("dgCMatrix", "Matrix", i=m.indices.astype(np.int32), p=m.indptr.astype(np.int32),
                 Dim=np.array(m.shape, dtype=np.int32), Dimnames=[np.asarray(ref.var_names), None],
                 x=m.data.astype(np.float64), factors=[])
    cols = {c: ref.obs[c].to_numpy() for c in ref.obs}
    data_mirror.write_rda(bad / "cellbench_lung_celllines/original/cellbench.rda", {"cellbench": sce(
        "SingleCellExperiment", "SingleCellExperiment", NAMES=np.asarray(ref.var_names),
        assays=sce("SimpleAssays", "SummarizedExperiment", data=sce("SimpleList", "S4Vectors", listData={"counts": counts})),
        colData=sce("DFrame", "S4Vectors", rownames=np.asarray(ref.obs_names), nrows=np.array([ref.n_obs], dtype=np.int32),
                    listData=cols))})
    reg = data_mirror.mirror_registry(out)
    ds = reg["cellbench_10x_3cl"]   # cellbench.rda unpinned, as in the real registry
    files = tuple(dataclasses.replace(f, sha256=None) if f.name == "cellbench.rda" else f for f in ds.files)
    monkeypatch.setattr(sd, "DATASETS", {**reg, ds.name: dataclasses.replace(ds, files=files)})
    httpd, url = data_mirror.serve(bad)
    monkeypatch.setenv("SCAML_DATA_URL", url)
    try:
        with pytest.raises(ValueError, match="does not hold the registered content"):
            sd.load_dataset("cellbench_10x_3cl")
    finally:
        httpd.shutdown()
    assert not (offline_clone / sd.DATASETS["cellbench_10x_3cl"].path).exists()


R_SCE = r'''
suppressMessages({library(SingleCellExperiment); library(Matrix)})
args <- commandArgs(TRUE)
m <- Matrix(matrix(c(0, 1, 2, 0, 0, 3, 5, 0, 0), 3, 3, dimnames = list(c("G1", "G2", "G2"), c("c1", "c2", "c3"))),
            sparse = TRUE)
cd <- DataFrame(cell_line = c("H1975", "H2228", "HCC827"), number_of_genes = c(2L, 1L, 1L),
                total_count_per_cell = c(8, 1, 2), row.names = c("c1", "c2", "c3"))
cellbench <- SingleCellExperiment(assays = list(counts = m, logcounts = log1p(m)), colData = cd)
save(cellbench, file = file.path(args[1], "sparse.rda"))
cellbench <- SingleCellExperiment(assays = list(counts = as.matrix(m)), colData = cd)
save(cellbench, file = file.path(args[1], "dense.rda"))
'''


def test_read_sce_rda_on_files_r_wrote(tmp_path):
    "read_sce_rda on SingleCellExperiment objects saved by R itself (dgCMatrix and dense counts)."
    import os
    import subprocess
    rscript = shutil.which("Rscript")
    ok = rscript and subprocess.run([rscript, "-e", "suppressMessages(library(SingleCellExperiment))"],
                                    capture_output=True).returncode == 0
    if not ok:
        if os.environ.get("SCAML_REQUIRE_SYSTEM") == "1":
            pytest.fail("R with SingleCellExperiment is missing (Debian: r-bioc-singlecellexperiment)")
        pytest.skip("needs R with SingleCellExperiment (Debian: r-bioc-singlecellexperiment)")
    (tmp_path / "w.R").write_text(R_SCE)
    subprocess.run([rscript, str(tmp_path / "w.R"), str(tmp_path)], check=True, capture_output=True)
    for f in ("sparse.rda", "dense.rda"):
        a = sd.read_sce_rda(tmp_path / f)
        assert list(a.obs_names) == ["c1", "c2", "c3"] and list(a.var_names) == ["G1", "G2", "G2"], f
        X = a.X.toarray() if sp.issparse(a.X) else a.X
        np.testing.assert_array_equal(X, [[0, 1, 2], [0, 0, 3], [5, 0, 0]])
        assert a.obs["cell_line"].astype(str).tolist() == ["H1975", "H2228", "HCC827"]
        assert a.obs["number_of_genes"].tolist() == [2, 1, 1]
    with pytest.raises(KeyError, match="no assay 'spliced'; it has 'counts', 'logcounts'"):
        sd.read_sce_rda(tmp_path / "sparse.rda", assay="spliced")


R_MUSCAT = r'''
suppressMessages({library(SingleCellExperiment); library(Matrix)})
src <- commandArgs(TRUE)[1]
m <- as(readMM(file.path(src, "counts.mtx")), "CsparseMatrix")
rownames(m) <- readLines(file.path(src, "genes.txt")); colnames(m) <- readLines(file.path(src, "cells.txt"))
cd <- read.delim(file.path(src, "obs.tsv"), stringsAsFactors = FALSE)
cd <- DataFrame(cluster_id = factor(cd$cluster_id), sample_id = factor(cd$sample_id), group_id = factor(cd$group_id),
                row.names = cd$cell)
ei <- data.frame(sample_id = levels(cd$sample_id), group_id = factor(c("ctrl", "ctrl", "stim", "stim")),
                 n_cells = as.integer(table(cd$sample_id)))
example_sce <- SingleCellExperiment(assays = list(counts = m, logcounts = log1p(m)), colData = cd,
                                    metadata = list(experiment_info = ei))
rowData(example_sce)$n_cells <- rowSums(m > 0)
reducedDim(example_sce, "PCA") <- matrix(seq_len(ncol(m) * 2) / 7, ncol = 2)
save(example_sce, file = file.path(src, "example_sce.rda"), compress = "xz")   # as R packages ship their data
'''


def test_kang_builds_from_an_sce_that_r_saved(tmp_path, data_dir):
    """muscat's example_sce.rda as R saves such an object (factors in colData, counts and logcounts, rowData, a
    reduced dimension, metadata, xz compression) builds into the registered Kang content, without R."""
    import os
    import subprocess

    import scipy.io
    rscript = shutil.which("Rscript")
    ok = rscript and subprocess.run([rscript, "-e", "suppressMessages(library(SingleCellExperiment))"],
                                    capture_output=True).returncode == 0
    if not ok:
        if os.environ.get("SCAML_REQUIRE_SYSTEM") == "1":
            pytest.fail("R with SingleCellExperiment is missing (Debian: r-bioc-singlecellexperiment)")
        pytest.skip("needs R with SingleCellExperiment (Debian: r-bioc-singlecellexperiment)")
    ds = sd.DATASETS["muscat_kang_ifnb"]
    ref = anndata.read_h5ad(data_dir / ds.path)
    scipy.io.mmwrite(tmp_path / "counts.mtx", sp.csc_matrix(ref.X.T).astype(np.int64))
    barcodes = [c.split("_", 1)[1] for c in ref.obs_names]
    (tmp_path / "genes.txt").write_text("\n".join(ref.var_names) + "\n")
    (tmp_path / "cells.txt").write_text("\n".join(barcodes) + "\n")
    obs = ref.obs.rename(columns={"label": "cluster_id", "batch": "group_id"})[["cluster_id", "sample_id", "group_id"]]
    obs.assign(cell=barcodes)[["cell", "cluster_id", "sample_id", "group_id"]].to_csv(tmp_path / "obs.tsv", sep="\t",
                                                                                     index=False)
    (tmp_path / "w.R").write_text(R_MUSCAT)
    subprocess.run([rscript, str(tmp_path / "w.R"), str(tmp_path)], check=True, capture_output=True)
    a = sd._BUILDERS[ds.name](tmp_path)
    assert sd.content_sha256(a, ds.label_key) == ds.content_sha256
    assert list(a.obs.columns) == ["label", "batch", "donor", "sample_id"]
    assert all(a.obs[c].dtype == ref.obs[c].dtype for c in a.obs)
