"""Novelty detection and rejection on real data; writes benchmarks/novelty_results.json.

CellBench: fit on the 3-cell-line experiments (sc_celseq2, sc_dropseq), score the singlets of the three 5-cell-line
plates, where A549 and H838 are unseen. Tabula Muris FACS: one cell type left out of the training split, the test
split scored. Rejection: a classifier with an 'unknown' rule fitted on the training side only (cross-fitted over the
two CellBench training experiments; a stratified hold-out of the training cells for Tabula Muris).
Run: SCAML_DATA_DIR=../shared/data python benchmarks/novelty.py
     python benchmarks/novelty.py --smoke --out /tmp/novelty.json   # a few hundred cells, seconds; numbers mean nothing
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from _smoke import smoke_out, tiny
from scaml.core import package_versions
from scaml.results import to_json
from scaml.data import clean_labels
from scaml.datasets import load_dataset
from scaml.metrics import rejection_metrics
from scaml.novelty import METHODS, novelty_split, parse_flag, run_novelty
from scaml.rejection import fit_rejection, predict_with_rejection
from scaml.splits import filter_cells

warnings.filterwarnings("ignore", category=UserWarning)
OUT = Path(__file__).with_name("novelty_results.json")

def novelty_block(adata, methods=METHODS, **kw):
    res = {}
    for m in methods:
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
        pred = predict_with_rejection(adata[te], rm)
        met = rejection_metrics(y, pred.pred, train_classes=rm.classes)
        met["calibration"] = rm.calibration
        out[name] = met
        print(name, {k: round(met[k], 3) for k in ("pct_unknown", "known_kept", "unseen_rejected", "f1_labelled")},
              flush=True)
    return out

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few hundred cells, few methods, seconds; numbers mean nothing")
    ap.add_argument("--out", help=f"results file (default {OUT.name}; a temporary file with --smoke)")
    a = ap.parse_args(argv)
    smoke = a.smoke
    out = smoke_out(a.out, OUT.name) if smoke else Path(a.out or OUT)
    methods = ("maxproba", "lof") if smoke else METHODS
    cb_genes, tm_genes = (200, 200) if smoke else (3000, 2000)
    t0 = time.perf_counter()
    cb = filter_cells(load_dataset("cellbench_plate_based"), {"demuxlet_cls": "SNG"})
    if smoke: cb = tiny(cb, 240, "cell_line", per_value=20)
    cb_kw = dict(flag_key="cell_line", positive=["A549", "H838"], split_key="batch", train=["sc_celseq2", "sc_dropseq"])
    results = {"cellbench": {"setup": {**cb_kw, "filter": "demuxlet_cls=SNG", "n_top_genes": cb_genes, "label_key": "cell_line"},
                             "novelty": novelty_block(cb, methods, label_key="cell_line", n_top_genes=cb_genes, **cb_kw)}}
    results["cellbench"]["rejection"] = rejection_block(
        cb, label_key="cell_line", group_key="batch", n_top_genes=cb_genes, **cb_kw,
        setups={"lr_proba": {"model": "lr"}, "rf_proba": {"model": "rf"}, "lr_lof": {"model": "lr", "score": "lof"}})

    tm = load_dataset("deepchem_actinn_tm_facs")
    if smoke: tm = tiny(tm, 300, "cell_type", per_value=15)
    results["tabula_muris_leave_one_out"] = {}
    for ct in ["NK cell", "Hepatocyte"][:1 if smoke else 2]:
        kw = dict(flag_key="cell_type", positive=ct, split_key="split", train="train")
        blk = {"novelty": {}}
        for m in ["lof", "maxproba", "entropy"][:len(methods)]:
            r = run_novelty(tm, method=m, model="lr", label_key="cell_type", n_top_genes=tm_genes, **kw)
            blk["novelty"][m] = {k: r.metrics[k] for k in ("auroc", "auprc", "fpr_at_95_recall", "n", "n_positive")}
            print(ct, m, round(r.metrics["auroc"], 4), flush=True)
        blk["rejection"] = rejection_block(tm, label_key="cell_type", group_key=None, n_top_genes=tm_genes,
                                           setups={"lr_proba": {"model": "lr"}}, **kw)
        results["tabula_muris_leave_one_out"][ct] = blk

    results["versions"] = package_versions()
    results["total_s"] = round(time.perf_counter() - t0, 1)
    out.write_text(to_json(results))
    print(f"wrote {out}")

if __name__ == "__main__":
    main()
