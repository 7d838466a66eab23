"""Novelty detection and rejection on real data; writes benchmarks/novelty_results.json.

CellBench: fit on the 3-cell-line experiments (sc_celseq2, sc_dropseq), score the singlets of the three 5-cell-line
plates, where A549 and H838 are unseen. Tabula Muris FACS: one cell type left out of the training split, the test
split scored. Rejection: a classifier with an 'unknown' rule fitted on the training side only (cross-fitted over the
two CellBench training experiments; a stratified hold-out of the training cells for Tabula Muris).
Run: SCAML_DATA_DIR=../shared/data python benchmarks/novelty.py
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from scaml.core import package_versions
from scaml.results import to_json
from scaml.data import clean_labels
from scaml.datasets import load_dataset
from scaml.novelty import (METHODS, fit_rejection, filter_cells, novelty_split, parse_flag, predict_with_rejection,
                           rejection_metrics, run_novelty)

warnings.filterwarnings("ignore", category=UserWarning)
OUT = Path(__file__).with_name("novelty_results.json")

def novelty_block(adata, **kw):
    res = {}
    for m in METHODS:
        t = time.perf_counter()
        r = run_novelty(adata, method=m, model="lr", **kw)
        res[m] = {k: r.metrics[k] for k in ("auroc", "auprc", "fpr_at_95_recall", "n", "n_positive", "auroc_by_value")}
        res[m]["seconds"] = round(time.perf_counter() - t, 1)
        print(m, round(r.metrics["auroc"], 4), flush=True)
    r = run_novelty(adata, method="maxproba", model="rf", **kw)
    res["maxproba_rf"] = {k: r.metrics[k] for k in ("auroc", "auprc", "fpr_at_95_recall", "auroc_by_value")}
    print("maxproba_rf", round(r.metrics["auroc"], 4), flush=True)
    return res

def rejection_block(adata, *, flag_key, positive, label_key, split_key, train, group_key, n_top_genes, setups):
    flag = parse_flag(adata.obs[flag_key], positive=positive)
    fit, te, desc = novelty_split(adata, flag=flag, split_key=split_key, train=train)
    y, _ = clean_labels(adata[te], label_key)
    y = np.where(flag[te], np.char.add("novel:", y.astype(str)), y).astype(object)
    out = {}
    for name, kw in setups.items():
        rm = fit_rejection(adata[fit], label_key=label_key, group_key=group_key, n_top_genes=n_top_genes, **kw)
        pred = predict_with_rejection(rm, adata[te])
        met = rejection_metrics(y, pred.pred, train_classes=rm.model.classes)
        met["calibration"] = rm.calibration
        out[name] = met
        print(name, {k: round(met[k], 3) for k in ("pct_unknown", "known_kept", "unseen_rejected", "f1_labelled")},
              flush=True)
    return out

t0 = time.perf_counter()
cb = filter_cells(load_dataset("cellbench_plate_based"), {"demuxlet_cls": "SNG"})
cb_kw = dict(flag_key="cell_line", positive=["A549", "H838"], split_key="batch", train=["sc_celseq2", "sc_dropseq"])
results = {"cellbench": {"setup": {**cb_kw, "filter": "demuxlet_cls=SNG", "n_top_genes": 3000, "label_key": "cell_line"},
                         "novelty": novelty_block(cb, label_key="cell_line", n_top_genes=3000, **cb_kw)}}
results["cellbench"]["rejection"] = rejection_block(
    cb, label_key="cell_line", group_key="batch", n_top_genes=3000, **cb_kw,
    setups={"lr_proba": {"model": "lr"}, "rf_proba": {"model": "rf"}, "lr_lof": {"model": "lr", "score": "lof"}})

tm = load_dataset("deepchem_actinn_tm_facs")
results["tabula_muris_leave_one_out"] = {}
for ct in ["NK cell", "Hepatocyte"]:
    kw = dict(flag_key="cell_type", positive=ct, split_key="split", train="train")
    blk = {"novelty": {}}
    for m in ["lof", "maxproba", "entropy"]:
        r = run_novelty(tm, method=m, model="lr", label_key="cell_type", n_top_genes=2000, **kw)
        blk["novelty"][m] = {k: r.metrics[k] for k in ("auroc", "auprc", "fpr_at_95_recall", "n", "n_positive")}
        print(ct, m, round(r.metrics["auroc"], 4), flush=True)
    blk["rejection"] = rejection_block(tm, label_key="cell_type", group_key=None, n_top_genes=2000,
                                       setups={"lr_proba": {"model": "lr"}}, **kw)
    results["tabula_muris_leave_one_out"][ct] = blk

results["versions"] = package_versions()
results["total_s"] = round(time.perf_counter() - t0, 1)
OUT.write_text(to_json(results))
print(f"wrote {OUT}")
