"""What the out-of-core engine reads, on real cells: only the matrix (never `obs`, so never the cell names), each test
chunk once, the same values whether a block is read on one thread or two, and per-cell arrays in small dtypes."""
from __future__ import annotations

from pathlib import Path

import anndata
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from scaml.datasets import load_task
from scaml.models import CellTypeModel
from scaml.outofcore import FileBlocks, fit_from_blocks, predict_from_blocks
from scaml.preprocess import Preprocessor
from scaml.streaming import fit_preprocessor_streaming, read_obs_codes, read_rows


@pytest.fixture(scope="module")
def split_file(tmp_path_factory, data_dir) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, list]:
    "The 12-type Tabula Muris FACS split (5,000 cells) in a file, train and test cells interleaved; rows and labels."
    task = load_task("actinn_tutorial")
    path = tmp_path_factory.mktemp("reads") / "split.h5ad"
    task.write_h5ad(path)
    split, labels = task.obs["split"].to_numpy(), task.obs["label"].astype(str).to_numpy()
    classes = sorted(set(labels))
    return path, np.flatnonzero(split == "train"), np.flatnonzero(split == "test"), \
        np.searchsorted(classes, labels), classes

@pytest.fixture()
def reads(monkeypatch) -> list[str]:
    "The name of every HDF5 dataset read from now on (h5py, whoever reads it)."
    seen, get = [], h5py.Dataset.__getitem__
    def spy(self, key, *a, **kw):
        seen.append(self.name)
        return get(self, key, *a, **kw)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return seen

def test_training_and_prediction_read_only_the_matrix(split_file, reads):
    path, tr, te, y, classes = split_file
    backed = anndata.read_h5ad(path, backed="r")          # opening reads obs; from here on only X may be read
    reads.clear()
    pp = fit_preprocessor_streaming(backed, Preprocessor(n_top_genes=500), rows=tr, block_size=700)
    blocks = FileBlocks(backed, pp, tr, chunk=128, chunks_per_block=8)
    m = fit_from_blocks(CellTypeModel("lr", class_weight="balanced"), blocks, y[tr][blocks.order], classes=classes,
                        preprocessor=pp, gather_cells=0)
    test_blocks = FileBlocks(backed, pp, te, chunk=100, chunks_per_block=1, shuffle=False)
    n_before = reads.count("/X/data")
    P, _ = predict_from_blocks({"lr": m}, test_blocks)
    assert set(reads) == {"/X/data", "/X/indices", "/X/indptr"}, sorted(set(reads))   # no obs, no cell names
    assert reads.count("/X/data") - n_before == len(test_blocks)      # each test chunk read once, prefetched or not
    assert (P["lr"].argmax(1) == y[te]).mean() > 0.9
    # per-cell arrays in the smallest dtype that holds them
    assert blocks.order.dtype == np.int32 and np.array_equal(np.sort(blocks.order), np.arange(len(tr)))
    backed.file.close()

def test_same_values_on_one_thread_or_two(split_file):
    path, tr, te, y, classes = split_file
    backed = anndata.read_h5ad(path, backed="r")
    inmem = anndata.read_h5ad(path)
    # rows picked straight from HDF5 are anndata's rows, bit for bit
    for rows in (tr[:777], te[5:6], np.arange(100, 400)):
        R, ref = read_rows(backed.X, rows), sp.csr_matrix(inmem.X[rows], dtype=np.float32)
        assert R.dtype == np.float32 and R.shape == ref.shape
        assert np.array_equal(R.indptr, ref.indptr) and np.array_equal(R.indices, ref.indices)
        assert np.array_equal(R.data, ref.data)
    pp = fit_preprocessor_streaming(backed, Preprocessor(n_top_genes=500), rows=tr)
    one, two = (FileBlocks(backed, pp, tr, chunk=64, chunks_per_block=7, threads=t) for t in (1, 2))
    for i in range(len(one)):
        A, B = one[i], two[i]
        assert np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices)
        assert np.array_equal(A.data, B.data)
    m = fit_from_blocks(CellTypeModel("actinn", class_weight="balanced", max_epochs=3), two, y[tr][two.order],
                        classes=classes, preprocessor=pp, gather_cells=0)
    P1 = predict_from_blocks({"m": m}, FileBlocks(backed, pp, te, chunk=300, chunks_per_block=1, shuffle=False,
                                                  threads=1))[0]["m"]
    P2 = predict_from_blocks({"m": m}, FileBlocks(backed, pp, te, chunk=300, chunks_per_block=3, shuffle=False))[0]["m"]
    assert np.array_equal(P1, P2)                          # predictions to the last digit
    backed.file.close()

def test_obs_column_read_without_cell_names(split_file, reads):
    path, tr, te, y, classes = split_file
    codes, cats = read_obs_codes(path, "split")
    assert set(reads) == {"/obs/split/codes", "/obs/split/categories"}, sorted(set(reads))   # never /obs/_index
    assert codes.dtype == np.int8
    assert np.array_equal(np.flatnonzero(cats[codes] == "train"), tr)
    labels, names = read_obs_codes(path, "label")
    assert list(names[labels][te]) == list(np.asarray(classes)[y[te]])
    with pytest.raises(KeyError, match="'celltype' is not in"):
        read_obs_codes(path, "celltype")
