"""Answers to the questions after a benchmark, on real data; writes benchmarks/analysis_results.json.

1. The cross-batch matrix on CellBench (five experiments, CEL-seq2 and Drop-seq, singlets only), four models.
2. Bootstrap intervals of every model on the Tabula Muris FACS -> droplet task, and xgb vs lr paired.
3. Top genes of lr and xgb fitted on the Tabula Muris droplet data (all 19,371 genes): known B and T cell markers.

Run: SCAML_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/analysis.py [OUTDIR]
     python benchmarks/analysis.py --smoke --out /tmp/analysis.json [OUTDIR]   # a few hundred cells, lr and xgb
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from _smoke import smoke_out, tiny
from scaml.benchmark import run_benchmark
from scaml.core import package_versions
from scaml.results import to_json
from scaml.datasets import load_dataset, load_task
from scaml.explain import overlap_top_genes, save_top_genes, top_genes
from scaml.matrix import run_matrix
from scaml.splits import filter_cells
from scaml.models import CellTypeModel
from scaml.preprocess import Preprocessor
from scaml.metrics import ci_for_benchmark
from scaml.results import compare_results_dir, save_stats_figures

MODELS = ["lr", "rf", "xgb", "mlp"]
B_MARKERS, T_MARKERS = ["Cd79a", "Cd79b", "Cd19", "Ms4a1"], ["Cd3e", "Cd3d", "Cd3g"]

def main(outdir: Path, smoke: bool = False) -> dict:
    "The three answers; with `smoke`, on a few hundred cells of each dataset and two models (numbers mean nothing)."
    warnings.simplefilter("ignore", UserWarning)
    out: dict = {"versions": package_versions()}
    models = ["lr", "xgb"] if smoke else MODELS
    def small(a, key, n=300): return tiny(a, n, key, per_value=10) if smoke else a

    t = time.perf_counter()
    cb = small(filter_cells(load_dataset("cellbench_plate_based"), ["demuxlet_cls=SNG"]), "batch")
    mr = run_matrix(cb, label_key="cell_line", split_key="batch", models=models, cv_folds=3, progress=False,
                    outdir=outdir / "cellbench_matrix", overwrite=True)
    out["cellbench_matrix"] = {
        "cells": int(cb.n_obs), "groups": mr.groups, "metric": mr.metric, "n_scores": int(len(mr.matrix)),
        "summary": mr.summary.round(4).to_dict(orient="index"),
        "seconds": round(time.perf_counter() - t, 1)}

    t = time.perf_counter()
    task = small(load_task("tm_facs_to_droplet"), "label")
    res = run_benchmark(task, label_key="label", split_key="split", train="train", test="test", models=models,
                        progress=False, outdir=outdir / "tm_facs_to_droplet", overwrite=True)
    train_classes = sorted(res.manifest["train_class_counts"])
    y = res.predictions["lr"]["y_true"].to_numpy()
    tb = time.perf_counter()
    cis = {m: ci_for_benchmark(y, res.proba[m].to_numpy(), res.classes, train_classes, 0) for m in models}
    boot_s = time.perf_counter() - tb
    cmp = compare_results_dir(outdir / "tm_facs_to_droplet", "xgb", "lr", n_boot=2000)
    save_stats_figures(outdir / "tm_facs_to_droplet")
    out["tm_facs_to_droplet"] = {
        "n_test": int(len(y)), "bootstrap_seconds_4_models_200_resamples": round(boot_s, 3),
        "ci": {m: {k: {q: round(v[q], 4) for q in ("estimate", "lo", "hi")} for k, v in c.items() if isinstance(v, dict)}
               for m, c in cis.items()},
        "xgb_vs_lr": {"verdict": cmp["verdict"], "mcnemar": cmp["mcnemar"],
                      "diff": {k: {q: round(v[q], 4) for q in ("estimate", "lo", "hi", "p_boot")}
                               for k, v in cmp["diff"].items()}},
        "seconds": round(time.perf_counter() - t, 1)}

    t = time.perf_counter()
    ad = small(load_dataset("actinn_tm_droplet"), "cell_type")
    hits, tables = {}, {}
    for m in ("lr", "xgb"):
        model = CellTypeModel(m, preprocessor=Preprocessor(gene_selection="all"), class_weight="balanced")
        model.fit(ad, label_key="cell_type")
        tg = top_genes(model, ad, n_top=20)
        tables[m] = tg
        b, tc = tg[tg["class"] == "B cell"], tg[tg["class"] == "T cell"]
        hits[m] = {"method": str(tg.method.iloc[0]), "n_features": len(model.preprocessor.features_),
                   "B cell": {g: int(b.set_index("gene").loc[g, "rank"]) for g in B_MARKERS if g in set(b.gene)},
                   "T cell": {g: int(tc.set_index("gene").loc[g, "rank"]) for g in T_MARKERS if g in set(tc.gene)},
                   "top5": {c: list(tg[tg["class"] == c].gene.head(5)) for c in tg["class"].unique()}}
    ov = overlap_top_genes(tables["lr"], tables["xgb"])
    out["tm_droplet_top_genes"] = {"marker_hits_top20": hits,
                                   "lr_vs_xgb_overlap": ov[["class", "n_shared", "jaccard"]].to_dict(orient="records"),
                                   "seconds": round(time.perf_counter() - t, 1)}
    # the FACS -> droplet run's saved models, explained on its training cells (2,000-gene FACS subset)
    written = save_top_genes(outdir / "tm_facs_to_droplet", task, models=["lr", "xgb"])
    out["tm_facs_to_droplet"]["top_genes_written"] = sorted(written)
    return out

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", help="folder for the results folders (default: a new temporary folder)")
    ap.add_argument("--out", help="summary file (default analysis_results.json; a temporary file with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="a few hundred cells, lr and xgb: checks that the script runs")
    a = ap.parse_args()
    base = Path(a.outdir) if a.outdir else Path(tempfile.mkdtemp(prefix="scaml_analysis_"))
    result = main(base, smoke=a.smoke)
    dest = smoke_out(a.out, "analysis_results.json") if a.smoke else \
        Path(a.out) if a.out else Path(__file__).with_name("analysis_results.json")
    dest.write_text(to_json(result))
    print(json.dumps({k: v for k, v in result.items() if k != "versions"}, indent=1)[:4000])
    print(f"results folders under {base}; summary in {dest}")
