"""Readers and dataset registry, driven through the installed package on the real datasets."""
from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import scaml.datasets as sd
import scaml.io as sio
from scaml.data import read_h5ad

DATA = Path(os.environ.get("SCAML_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data").resolve()

@pytest.fixture(autouse=True)
def _public_sources(monkeypatch):
    "These tests name their sources themselves: a mirror in SCAML_DATA_URL (which filled the test cache) is not used."
    monkeypatch.delenv("SCAML_DATA_URL", raising=False)

@pytest.fixture
def env(monkeypatch, tmp_path):
    "SCAML_DATA_DIR at the shared data, SCAML_CACHE in tmp_path."
    monkeypatch.setenv("SCAML_DATA_DIR", str(DATA))
    monkeypatch.setenv("SCAML_CACHE", str(tmp_path / "cache"))
    return tmp_path

@pytest.fixture(scope="module")
def tenx_slice():
    a = anndata.read_h5ad(DATA / "cellbench_lung_celllines/cellbench_10x_3cl.h5ad")[:60].copy()
    a.obs_names = [f"AAACCTGA{i.split('_')[-1]}-1" for i in a.obs_names]
    return a

# ---------------------------------------------------------------- datasets
@pytest.mark.parametrize("name", list(sd.DATASETS))
def test_load_every_dataset(env, name):
    ds = sd.DATASETS[name]
    a = sd.load_dataset(name)
    assert a.shape == (ds.n_obs, ds.n_vars)
    assert ds.label_key in a.obs.columns
    assert a.obs[ds.label_key].notna().all()
    assert sd.content_sha256(a, ds.label_key) == ds.content_sha256
    assert not (env / "cache").exists()  # nothing downloaded or created

def test_data_and_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SCAML_DATA_DIR", raising=False)
    monkeypatch.delenv("SCAML_CACHE", raising=False)
    assert sd.data_dir() is None
    assert sd.cache_dir() == Path.home() / ".cache" / "scaml"
    monkeypatch.setenv("SCAML_CACHE", str(tmp_path / "c"))
    assert sd.cache_dir() == tmp_path / "c" and not (tmp_path / "c").exists()

def test_list_datasets_and_tasks():
    df = sd.list_datasets()
    assert set(df.name) == {"deepchem_actinn_tm_facs", "actinn_tm_droplet", "cellbench_plate_based",
                            "cellbench_10x_3cl", "scanpy_pbmc68k_reduced", "muscat_kang_ifnb"}
    assert {"description", "n_obs", "label_key", "citation"} <= set(df.columns)
    assert list(sd.list_tasks().name) == ["actinn_tutorial", "tm_facs_to_droplet", "cellbench_celseq2_to_dropseq",
                                         "cellbench_plate1_to_plates23", "tm_droplet_to_facs", "kang_ctrl_to_stim",
                                         "kang_stim_to_ctrl"]

def test_missing_dataset_offline(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(sd, "_download", no_network)   # nothing leaves this machine
    monkeypatch.setenv("SCAML_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SCAML_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as e:
        sd.load_dataset("deepchem_actinn_tm_facs")
    msg = str(e.value)
    assert "https://raw.githubusercontent.com/deepchem/deepchem/fbe3b911a94a6eb8c84c1a9e7ac67a472c49ea80/" in msg
    assert str(tmp_path / "cache" / "deepchem_actinn_tm_facs" / "original" / "train_sample.h5") in msg
    assert "SCAML_DATA_DIR" in msg
    assert not list((tmp_path / "cache").rglob("*.part*"))
    with pytest.raises(FileNotFoundError, match="needs the file 'cellbench.rda'"):
        sd.load_dataset("cellbench_10x_3cl")   # R data, read in Python: only the download is missing

def test_unknown_dataset_and_task():
    with pytest.raises(KeyError, match="available: 'deepchem_actinn_tm_facs'"):
        sd.load_dataset("pbmc3k")
    with pytest.raises(KeyError, match="available: 'actinn_tutorial'"):
        sd.load_task("pbmc3k")

def test_checksum_mismatch_local_and_cache(tmp_path):
    ds = sd.DATASETS["deepchem_actinn_tm_facs"]
    p = tmp_path / ds.path
    p.parent.mkdir(parents=True)
    b = bytearray((DATA / ds.path).read_bytes())
    b[len(b) // 3] ^= 0x01
    p.write_bytes(bytes(b))
    with pytest.raises(ValueError, match="checksum mismatch.*expected sha256 " + ds.sha256):
        sd.load_dataset(ds.name, data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert p.exists()  # a local file is never deleted
    with pytest.raises(ValueError, match="cached file was removed"):
        sd.load_dataset(ds.name, data_dir=tmp_path / "none", cache_dir=tmp_path)
    assert not p.exists()

def _with_sources(monkeypatch, name, folder):
    ds = sd.DATASETS[name]
    files = tuple(dataclasses.replace(f, url=(folder / f.name).as_uri()) for f in ds.files)
    monkeypatch.setitem(sd.DATASETS, name, dataclasses.replace(ds, files=files))

def test_download_rebuild_facs(monkeypatch, tmp_path):
    _with_sources(monkeypatch, "deepchem_actinn_tm_facs", DATA / "deepchem_actinn_tm_facs/original")
    a = sd.load_dataset("deepchem_actinn_tm_facs", data_dir=tmp_path / "none", cache_dir=tmp_path)
    ref = anndata.read_h5ad(DATA / "deepchem_actinn_tm_facs/deepchem_actinn_tm_facs.h5ad")
    assert (a.X != ref.X).nnz == 0 and list(a.obs_names) == list(ref.obs_names)
    assert (a.obs.split.astype(str) == ref.obs.split.astype(str)).all()
    assert (tmp_path / "deepchem_actinn_tm_facs/original/train_sample.h5").exists()
    # a corrupt original is refused and removed
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in sd.DATASETS["deepchem_actinn_tm_facs"].files:
        (bad / f.name).write_bytes(b"corrupt")
    _with_sources(monkeypatch, "deepchem_actinn_tm_facs", bad)
    with pytest.raises(ValueError, match="the download was removed"):
        sd.load_dataset("deepchem_actinn_tm_facs", data_dir=tmp_path / "none", cache_dir=tmp_path / "c2")
    assert not (tmp_path / "c2/deepchem_actinn_tm_facs/original/train_sample.h5").exists()

def test_download_rebuild_droplet(monkeypatch, tmp_path):
    "ACTINN's train_set.csv.gz (genes x cells) is rebuilt into exactly the registered content."
    ref = anndata.read_h5ad(DATA / "actinn_tm_droplet/actinn_tm_droplet.h5ad")
    src = tmp_path / "src"
    src.mkdir()
    df = pd.DataFrame(ref.X.T.toarray().astype(np.int64), index=ref.var_names, columns=ref.obs_names)
    with gzip.open(src / "train_set.csv.gz", "wt", compresslevel=1) as fh:
        df.to_csv(fh)
    for f in ("train_label.txt.gz", "train_set.h5"):
        (src / f).write_bytes((DATA / "actinn_tm_droplet/original" / f).read_bytes())
    _with_sources(monkeypatch, "actinn_tm_droplet", src)
    a = sd.load_dataset("actinn_tm_droplet", data_dir=tmp_path / "none", cache_dir=tmp_path / "c")
    assert a.shape == (1000, 19371)
    assert (a.var.in_train_set_h5 == ref.var.in_train_set_h5).all()
    assert (tmp_path / "c/actinn_tm_droplet/actinn_tm_droplet.h5ad.sha256").exists()

def test_pbmc_from_scanpy_package(tmp_path):
    a = sd.load_dataset("scanpy_pbmc68k_reduced", data_dir=tmp_path / "none", cache_dir=tmp_path)
    assert a.shape == (700, 765) and a.obs.cell_type.nunique() == 10
    # second call reads the cache (checked against the recorded checksum)
    b = sd.load_dataset("scanpy_pbmc68k_reduced", data_dir=tmp_path / "none", cache_dir=tmp_path)
    assert np.array_equal(a.X, b.X)

# the script that defines the benchmark tasks (../shared/tasks beside the clone, or beside SCAML_DATA_DIR): external
MAKE_TASKS = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "tasks" / "make_tasks.py",
                               DATA.parent / "tasks" / "make_tasks.py") if p.exists()), None)

def test_load_task_matches_make_tasks(env):
    tasks = {name: sd.load_task(name) for name in sd.TASKS}
    for name, got in tasks.items():   # every task: the registered size, raw counts, obs label and split only
        info = sd.TASKS[name]
        assert got.shape == (info["n_obs"], info["n_vars"]) and got.obs.label.nunique() == info["n_labels"], name
        assert list(got.obs.columns) == ["label", "split"] and set(got.obs.split) == {"train", "test"}, name
    if MAKE_TASKS is None:
        pytest.skip("compared with the registered sizes only: the task script ../shared/tasks/make_tasks.py "
                    "(external, the reference definitions) is not beside this clone")
    out = env / "tasks"
    subprocess.run([sys.executable, str(MAKE_TASKS), str(DATA), str(out)], check=True, capture_output=True)
    written = sorted(p.stem for p in out.glob("*.h5ad"))
    assert {"kang_ctrl_to_stim", "kang_stim_to_ctrl", "tm_facs_to_droplet"} <= set(written) <= set(tasks), written
    for name in written:
        ref, got = anndata.read_h5ad(out / f"{name}.h5ad"), tasks[name]
        assert got.shape == ref.shape, name
        assert list(got.obs_names) == list(ref.obs_names) and list(got.var_names) == list(ref.var_names)
        assert (got.obs.label.astype(str).values == ref.obs.label.astype(str).values).all()
        assert (got.obs.split.astype(str).values == ref.obs.split.astype(str).values).all()
        assert (got.X != ref.X).nnz == 0
    # tm_droplet_to_facs (not written by the script): tm_facs_to_droplet's cells with the sides swapped
    fwd, rev = tasks["tm_facs_to_droplet"], tasks["tm_droplet_to_facs"]
    assert set(rev.var_names) == set(fwd.var_names) and set(rev.obs_names) == set(fwd.obs_names)
    side = dict(zip(fwd.obs_names, fwd.obs.split.astype(str)))
    assert all(side[c] != s for c, s in zip(rev.obs_names, rev.obs.split.astype(str)))

# ---------------------------------------------------------------- readers
def test_read_actinn_hdf_facs():
    orig = DATA / "deepchem_actinn_tm_facs/original"
    ref = anndata.read_h5ad(DATA / "deepchem_actinn_tm_facs/deepchem_actinn_tm_facs.h5ad")
    for split, n in (("train", 4000), ("test", 1000)):
        a = sio.read_actinn_hdf(orig / f"{split}_sample.h5", orig / f"{split}_label_sample.txt")
        r = ref[ref.obs.split == split]
        assert a.shape == (n, 2000) and a.X.dtype == np.float32 and sp.issparse(a.X)
        assert list(a.obs_names) == list(r.obs_names) and list(a.var_names) == list(r.var_names)
        assert (a.X != r.X).nnz == 0
        assert (a.obs.cell_type.astype(str).values == r.obs.cell_type.astype(str).values).all()

def test_read_actinn_hdf_droplet():
    orig = DATA / "actinn_tm_droplet/original"
    ref = anndata.read_h5ad(DATA / "actinn_tm_droplet/actinn_tm_droplet.h5ad")
    a = sio.read(orig / "train_set.h5", labels=orig / "train_label.txt.gz")
    assert a.shape == (1000, 14063)
    assert set(a.var_names) == set(ref.var_names[ref.var.in_train_set_h5])
    r = ref[a.obs_names, a.var_names]
    assert (a.X != r.X).nnz == 0
    assert a.X.sum() == pytest.approx(float(r.X.sum()))
    assert (a.obs.cell_type.astype(str).values == r.obs.cell_type.astype(str).values).all()

def test_read_actinn_missing_labels(tmp_path):
    orig = DATA / "deepchem_actinn_tm_facs/original"
    lines = (orig / "test_label_sample.txt").read_text().splitlines()
    (tmp_path / "lab.txt").write_text("\n".join(lines[3:]) + "\n")
    with pytest.raises(ValueError, match="3 of 1000 cells in 'test_sample.h5' have no label") as e:
        sio.read_actinn_hdf(orig / "test_sample.h5", tmp_path / "lab.txt")
    assert lines[0].split("\t")[0] in str(e.value)

def _write_mtx_v3(a, folder, names, ids, types):
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(a.X.T))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.write("\n".join(a.obs_names) + "\n")
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.write("".join(f"{i}\t{n}\t{t}\n" for i, n, t in zip(ids, names, types)))

def test_read_10x_mtx_and_h5(tmp_path, tenx_slice):
    a = tenx_slice
    names = list(a.var_names)
    names[5] = names[4]  # duplicated symbol
    ids = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    types = ["Gene Expression"] * (a.n_vars - 2) + ["Antibody Capture"] * 2
    _write_mtx_v3(a, tmp_path / "mtx", names, ids, types)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # duplicated symbols are made unique without a warning
        m = sio.read(tmp_path / "mtx")
    assert m.shape == (60, a.n_vars - 2) and m.X.dtype == np.float32 and sp.issparse(m.X)
    assert m.var_names[5] == names[4] + "-1" and m.var.gene_ids.iloc[5] == ids[5]
    assert (m.X != a.X[:, :-2]).nnz == 0
    # v2 folder, uncompressed genes.tsv
    (tmp_path / "v2").mkdir()
    scipy.io.mmwrite(tmp_path / "v2" / "matrix.mtx", sp.coo_matrix(a.X.T))
    (tmp_path / "v2" / "barcodes.tsv").write_text("\n".join(a.obs_names) + "\n")
    (tmp_path / "v2" / "genes.tsv").write_text("".join(f"{i}\t{n}\n" for i, n in zip(ids, a.var_names)))
    assert (sio.read_10x_mtx(tmp_path / "v2").X != a.X).nnz == 0
    # v3 HDF5
    X = sp.csr_matrix(a.X)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = X.data.astype(np.int32), X.indices.astype(np.int64), X.indptr
        g["shape"] = np.array([a.n_vars, a.n_obs], dtype=np.int32)
        g["barcodes"] = np.array(a.obs_names, dtype="S")
        ft = g.create_group("features")
        ft["id"], ft["name"], ft["feature_type"] = (np.array(v, dtype="S") for v in (ids, names, types))
        ft["genome"] = np.array(["GRCh38"] * a.n_vars, dtype="S")
    h = sio.read(tmp_path / "f.h5")
    assert list(h.var_names) == list(m.var_names) and list(h.obs_names) == list(m.obs_names)
    assert (h.X != m.X).nnz == 0
    # the same files through scanpy's readers
    import scanpy as sc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scanpy warns about the duplicated symbol
        s = sc.read_10x_h5(tmp_path / "f.h5")
        s.var_names_make_unique()
        assert list(s.var_names) == list(h.var_names) and (sp.csr_matrix(s.X) != h.X).nnz == 0
        s = sc.read_10x_mtx(tmp_path / "mtx")
    assert list(s.var_names) == list(m.var_names) and (sp.csr_matrix(s.X) != m.X).nnz == 0

def test_read_10x_h5_v2(tmp_path, tenx_slice):
    a = tenx_slice
    X = sp.csr_matrix(a.X)
    with h5py.File(tmp_path / "v2.h5", "w") as f:
        g = f.create_group("hg19")
        g["data"], g["indices"], g["indptr"] = X.data, X.indices, X.indptr
        g["shape"] = np.array([a.n_vars, a.n_obs])
        g["barcodes"] = np.array(a.obs_names, dtype="S")
        g["genes"] = np.array(a.var.gene_id.astype(str).replace("", "NA"), dtype="S")
        g["gene_names"] = np.array(a.var_names, dtype="S")
    h = sio.read_10x_h5(tmp_path / "v2.h5")
    assert list(h.var_names) == list(a.var_names) and (h.X != a.X).nnz == 0
    with pytest.raises(KeyError, match="available: 'hg19'"):
        sio.read_10x_h5(tmp_path / "v2.h5", genome="mm10")

def test_read_table(tmp_path):
    ref = anndata.read_h5ad(DATA / "actinn_tm_droplet/actinn_tm_droplet.h5ad")[:50, :400]
    gxc = pd.DataFrame(ref.X.T.toarray().astype(int), index=ref.var_names, columns=ref.obs_names)
    gxc.to_csv(tmp_path / "genes_by_cells.csv.gz")
    gxc.T.to_csv(tmp_path / "cells_by_genes.tsv", sep="\t")
    for f in ("genes_by_cells.csv.gz", "cells_by_genes.tsv"):
        a = sio.read(tmp_path / f)
        assert a.shape == (50, 400), f
        assert list(a.obs_names) == list(ref.obs_names) and (a.X != ref.X).nnz == 0
        assert a.X.dtype == np.float32 and sp.issparse(a.X)
    a = sio.read_table(tmp_path / "genes_by_cells.csv.gz", transpose=False)
    assert a.shape == (400, 50)

def test_read_table_cellbench_ensembl(tmp_path):
    ref = anndata.read_h5ad(DATA / "cellbench_lung_celllines/cellbench_plate_based.h5ad")
    ref = ref[ref.obs.batch == "sc_celseq2"][:40]
    ref = ref[:, np.asarray(ref.X.sum(0)).ravel() > 0][:, :300]
    wells = [i.split(":")[1] for i in ref.obs_names]
    pd.DataFrame(ref.X.T.toarray(), index=ref.var_names, columns=wells).to_csv(tmp_path / "sc_celseq2.count.csv.gz")
    a = sio.read_table(tmp_path / "sc_celseq2.count.csv.gz")
    assert list(a.obs_names) == wells and list(a.var_names) == list(ref.var_names)

# ---------------------------------------------------------------- errors
def test_not_h5ad(tmp_path):
    p = tmp_path / "counts.h5ad"
    p.write_text("gene,c1\nA,1\n")
    with pytest.raises(ValueError, match="not an HDF5"):
        read_h5ad(p)
    with pytest.raises(ValueError, match="not an HDF5"):
        sio.read(p)

def test_empty_seuratdisk_h5ad(tmp_path):
    p = tmp_path / "seurat_v5.h5ad"
    with h5py.File(p, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
    assert p.stat().st_size < 8192  # a few kB, no X/obs/var
    with pytest.raises(ValueError, match="SeuratDisk"):
        sio.read(p)

def test_unknown_format(tmp_path):
    p = tmp_path / "x.loom"
    p.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"supported: folder.*\.h5ad.*\.csv"):
        sio.read(p)
    with pytest.raises(FileNotFoundError, match="missing matrix.mtx"):
        sio.read_10x_mtx(tmp_path)

def test_import_is_cheap():
    code = "import sys, scaml.io, scaml.datasets; print('scanpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_hvg_on_values_with_negative_means():
    "Scaled values (means below -1 for some genes) select genes instead of failing in the mean-expression bins."
    from scaml.preprocess import highly_variable_genes
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 50)) * rng.uniform(0.5, 3, 50) - np.r_[np.full(25, 2.0), np.zeros(25)]
    idx = highly_variable_genes(X, 10)
    assert len(idx) == 10 and len(set(idx)) == 10 and idx.max() < 50


def test_hvg_when_exp_overflows():
    "Values declared as logs that are not (CPM read as log1p) overflow exp(); the selection still returns genes."
    from scaml.preprocess import highly_variable_genes
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, (100, 40)) * np.r_[np.full(5, 1000.0), np.ones(35)])
    with np.errstate(over="ignore"):
        idx = highly_variable_genes(X, 10)
    assert len(idx) == 10 and len(set(idx)) == 10
