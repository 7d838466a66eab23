"""The model `scanvi` (scvi-tools' scANVI label transfer) in the benchmark harness, on the Kang PBMC task
(control -> interferon-stimulated). The tests that train need the extra `scaml[scvi]` (installed by
`scripts/setup_venv.sh dev`, so CI runs them); the refusals run without it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from scaml.benchmark import run_benchmark
from scaml.datasets import load_dataset
from scaml.models import CellTypeModel
from scaml.scanvi import count_matrix, scvi_available

DATA = Path(os.environ.get("SCAML_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data").resolve()
needs_scvi = pytest.mark.skipif(not scvi_available(), reason="scvi-tools is not installed: pip install 'scaml[scvi]'")
RUN = dict(label_key="label", split_key="split", train="train", test="test", progress=False, plots=False)


@pytest.fixture(scope="module")
def kang() -> ad.AnnData:
    "kang_ctrl_to_stim as ../shared/tasks/make_tasks.py builds it: raw counts in X, obs label and split."
    a = load_dataset("muscat_kang_ifnb")
    a.obs["split"] = np.where(a.obs["batch"] == "ctrl", "train", "test")
    a.obs = a.obs[["label", "split"]].astype(str)
    return a


@needs_scvi
def test_scanvi_results_folder(kang, tmp_path, cli):
    "Few epochs: the same artifacts as every model, far above chance, no model folder, and loading it says why."
    out = tmp_path / "run"
    res = run_benchmark(kang, **RUN, models=["lr", "scanvi"], outdir=out,
                        model_params={"scanvi": {"max_epochs": 30, "scanvi_epochs": 4}})
    d = out / "scanvi"
    for f in ("metrics.json", "predictions.csv", "proba.csv", "per_class.csv", "confusion_matrix.csv",
              "classification_report.txt"):
        assert (d / f).is_file(), f
    assert not (d / "model").exists() and (out / "lr" / "model" / "meta.json").is_file()
    summary = json.loads((out / "summary_metrics.json").read_text())
    assert set(summary) == {"lr", "scanvi"} and "ci" in summary["scanvi"]
    P = res.proba["scanvi"]
    assert list(P.columns) == res.classes and np.allclose(P.to_numpy().sum(1), 1)
    chance = 1 / len(res.classes)
    assert res.metrics["scanvi"]["f1_macro"] > chance + 0.4, res.metrics["scanvi"]["f1_macro"]
    assert res.models["scanvi"].backend.scvi_epochs_ == 30
    with pytest.raises(ValueError, match="not saved"):
        CellTypeModel.load(d / "model")
    kang[kang.obs.split == "test"].copy().write_h5ad(tmp_path / "query.h5ad")
    p = cli("scaml_predict", "--model", d / "model", "--adata", tmp_path / "query.h5ad", "--out", tmp_path / "p.csv",
            check=False)
    assert p.returncode != 0 and "not saved" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "p.csv").exists()


@needs_scvi
def test_query_labels_never_seen(kang):
    "Shuffling the query's labels changes nothing scANVI computes (a seeded run is deterministic)."
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(kang.obs.split == s), 300, replace=False) for s in ("train", "test")])
    small = kang[np.sort(idx)].copy()
    shuffled = small.copy()
    q = (shuffled.obs.split == "test").to_numpy()
    shuffled.obs.loc[q, "label"] = rng.permutation(shuffled.obs.loc[q, "label"].to_numpy())
    kw = dict(**RUN, models=["scanvi"], model_params={"scanvi": {"max_epochs": 2, "scanvi_epochs": 1}})
    a, b = run_benchmark(small, **kw), run_benchmark(shuffled, **kw)
    np.testing.assert_array_equal(a.proba["scanvi"].to_numpy(), b.proba["scanvi"].to_numpy())
    assert (a.predictions["scanvi"]["y_true"] != b.predictions["scanvi"]["y_true"]).any()   # the labels did differ


def test_scanvi_refused_off_memory(kang, tmp_path):
    "A backed file (streaming engine) or an embedding: refused before any work, naming the model and the way out."
    kang.write_h5ad(tmp_path / "k.h5ad")
    backed = ad.read_h5ad(tmp_path / "k.h5ad", backed="r")
    with pytest.raises(ValueError, match="scanvi.*streaming engine"):
        run_benchmark(backed, **RUN, models=["lr", "scanvi"], outdir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    a = kang.copy(); a.obsm["X_emb"] = np.zeros((a.n_obs, 2))
    with pytest.raises(ValueError, match="use_rep"):
        run_benchmark(a, **RUN, models=["scanvi"], use_rep="X_emb")


def test_counts_required(kang):
    "scANVI models counts: log-normalised values are refused with the layers the data has; a counts layer is used."
    logged = kang.copy()
    logged.X = logged.X.log1p()
    with pytest.raises(ValueError, match="not counts.*layers"):
        count_matrix(logged, list(kang.var_names[:50]))
    logged.layers["counts"] = kang.X
    with pytest.warns(UserWarning, match="NOT_A_GENE"):
        C = count_matrix(logged, [*kang.var_names[:3], "NOT_A_GENE"])
    np.testing.assert_array_equal(C[:, :3].toarray(), kang.X[:, :3].toarray())
    assert C[:, 3].nnz == 0


def test_fit_without_query_refused(kang):
    "CellTypeModel('scanvi').fit on training cells alone says how to run it, not a traceback from scvi-tools."
    with pytest.raises(ValueError, match="run_benchmark or scaml_train"):
        CellTypeModel("scanvi").fit(kang[kang.obs.split == "train"], label_key="label")
