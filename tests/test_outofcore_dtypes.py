"""What an out-of-core run holds per cell, on real cells: labels as small integer codes, row indices and block orders
in int32, and the predictions' class names shared by the cells (one string per class, not one per cell)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scaml.engines
import scaml.outofcore
from scaml.benchmark import benchmark_files
from scaml.datasets import load_task


@pytest.fixture(scope="module")
def task_file(tmp_path_factory, data_dir):
    "The 12-type Tabula Muris FACS split (5,000 cells) in a file."
    task = load_task("actinn_tutorial")
    path = tmp_path_factory.mktemp("dtypes") / "split.h5ad"
    task.write_h5ad(path)
    return path, task

@pytest.fixture(scope="module")
def run(task_file, tmp_path_factory):
    "One out-of-core run (lr from blocks, xgb on a sample) with the features it trained on."
    path, task = task_file
    seen = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(scaml.outofcore, "GATHER_CELLS", 500)             # lr streams over the blocks as on an atlas
    mp.setattr(scaml.outofcore, "MAX_CELLS", 1000)
    fit = scaml.engines.OutOfCoreEngine.fit
    def spy(self, name, model, feats, **kw):
        seen["feats"] = feats
        return fit(self, name, model, feats, **kw)
    mp.setattr(scaml.engines.OutOfCoreEngine, "fit", spy)
    out = tmp_path_factory.mktemp("dtypes_run") / "run"
    try:
        res = benchmark_files(path, backed=True, label_key="label", split_key="split", train="train", test="test",
                              models=["lr", "xgb"], engine="out-of-core", outdir=out, plots=False, progress=False,
                              model_params={"xgb": {"n_estimators": 20}})
    finally:
        mp.undo()
    return res, seen["feats"], out, task

def test_per_cell_training_arrays_are_small(run):
    res, feats, _, task = run
    n_train = int((task.obs["split"] == "train").sum())
    assert len(feats.y) == feats.Xtr.n_rows == n_train
    assert feats.y.dtype == np.int8                                  # 12 classes: one byte a cell
    assert feats.Xtr.rows.dtype == np.int32 and feats.Xtr.order.dtype == np.int32
    assert feats.Xte.rows.dtype == np.int32
    y_file = pd.Index(res.classes).get_indexer(task.obs["label"].astype(str)[task.obs["split"] == "train"])
    np.testing.assert_array_equal(feats.y, y_file[feats.Xtr.order])  # the codes are the labels, in block order

def test_predictions_share_the_class_names(run):
    res, _, out, task = run
    pr = res.predictions["lr"]
    assert pr["y_true_idx"].dtype == np.int8 and pr["y_pred_idx"].dtype == np.int8
    assert len({id(s) for s in pr["y_pred"]}) <= len(res.classes)    # a string per class, not per cell
    assert len({id(s) for s in pr["y_true"]}) <= len(res.classes)
    # the same table as the probabilities say, and as the file holds
    P = res.proba["lr"].to_numpy()
    np.testing.assert_array_equal(pr["y_pred"].to_numpy(), np.asarray(res.classes)[P.argmax(1)])
    f = pd.read_csv(out / "lr" / "predictions.csv", index_col=0)
    assert list(f.index) == list(task.obs_names[task.obs["split"] == "test"])
    assert (f["y_pred"].to_numpy() == pr["y_pred"].to_numpy()).all()
    assert (f["y_pred_idx"].to_numpy() == pr["y_pred_idx"].to_numpy()).all()
    assert res.summary.loc["lr", "accuracy"] > 0.8

def test_reports_from_codes_match_the_labels(run):
    "The report and confusion matrix, computed from the class indices, are those of the label strings."
    import warnings
    from sklearn.metrics import classification_report, confusion_matrix
    res, _, out, _ = run
    pr, classes = res.predictions["lr"], res.classes
    yt, yp = pr["y_true"].to_numpy(), pr["y_pred"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = classification_report(yt, yp, labels=classes, target_names=classes, digits=4, zero_division=0)
    assert (out / "lr" / "classification_report.txt").read_text() == rep
    cm = pd.read_csv(out / "lr" / "confusion_matrix.csv", index_col=0)
    np.testing.assert_array_equal(cm.to_numpy(), confusion_matrix(yt, yp, labels=classes))
