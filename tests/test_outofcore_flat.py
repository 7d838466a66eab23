"""What a backed run reads of `obs`, on real cells: only the columns it needs (label, split), and the cell names a
chunk at a time into an Arrow index, never `obs/_index` in one read nor as a Python string per cell."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import scaml.streaming
from scaml.cli import scaml_train
from scaml.datasets import load_task


@pytest.fixture(scope="module")
def task_file(tmp_path_factory, data_dir):
    "The 12-type Tabula Muris FACS split (5,000 cells) in a file, with an obs column no run needs."
    task = load_task("actinn_tutorial")
    task.obs["unused"] = [f"note {i}" for i in range(task.n_obs)]
    path = tmp_path_factory.mktemp("flat") / "split.h5ad"
    task.write_h5ad(path)
    return path, task

@pytest.fixture()
def obs_reads(monkeypatch) -> list[tuple[str, int]]:
    "`(dataset, rows read)` for every read of an `obs` dataset from now on (h5py, whoever reads it)."
    seen, get = [], h5py.Dataset.__getitem__
    def spy(self, key, *a, **kw):
        if self.name.startswith("/obs/"):
            n = len(range(*key.indices(self.shape[0]))) if isinstance(key, slice) else int(np.prod(self.shape))
            seen.append((self.name, n))
        return get(self, key, *a, **kw)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return seen

@pytest.mark.parametrize("engine", ["out-of-core", "streaming"])
def test_backed_run_reads_only_the_obs_it_needs(task_file, obs_reads, monkeypatch, tmp_path, engine):
    path, task = task_file
    monkeypatch.setattr(scaml.streaming, "NAMES_CHUNK", 1000, raising=False)
    out = tmp_path / "run"
    assert scaml_train(["--adata", str(path), "--backed", "--engine", engine, "--label-key", "label", "--split-key",
                        "split", "--split-train", "train", "--split-test", "test", "--models", "lr",
                        "--outdir", str(out), "--no-plots", "--quiet"]) == 0
    read = {name for name, _ in obs_reads}
    assert not any(n.startswith("/obs/unused") for n in read), sorted(read)       # a column no run needs
    names = [n for name, n in obs_reads if name == "/obs/_index"]
    assert names and max(names) <= 1000, names                                    # never the names whole
    assert sum(names) == task.n_obs
    pred = pd.read_csv(out / "lr" / "predictions.csv", index_col=0)
    test_cells = task.obs_names[task.obs["split"] == "test"]
    assert list(pred.index) == list(test_cells)                                   # cells named as the file names them
    assert (pred["y_pred"].to_numpy() == task.obs.loc[test_cells, "label"].astype(str).to_numpy()).mean() > 0.9
