"""scANVI (scvi-tools) against scaml's default models on the same cross-batch splits.

Each task runs `run_benchmark` with `lr rf xgb mlp scanvi` (the run's defaults: 2,000 highly variable genes chosen on
the training cells, balanced class weights; scANVI on the counts of the same genes, trained as the scvi-tools
tutorial does: scVI with its default epochs, then scANVI 20 epochs, the query unlabelled). For every task it records
each model's macro-F1 and accuracy with 95% bootstrap intervals, fit times, and the paired comparison of `scanvi`
with each scaml model (bootstrap interval of the macro-F1 difference, McNemar's test on accuracy). Results are merged
into `benchmarks/scanvi.json` task by task, so that tasks can be run one at a time:

    nice python benchmarks/scanvi.py tm_facs_to_droplet kang_ctrl_to_stim
    nice python benchmarks/scanvi.py kang_stim_to_ctrl --max-epochs 100      # fewer scVI epochs, recorded as such
    python benchmarks/scanvi.py --smoke --out /tmp/s.json    # 300 cells, lr + scanvi, 2 + 2 epochs: that it runs

Tasks: `tm_facs_to_droplet` (`scaml.load_task`), `tm_droplet_to_facs` (the same cells, sides swapped), and
`kang_ctrl_to_stim` / `kang_stim_to_ctrl` (`scaml.load_task`, as make_tasks.py builds them). Needs the extra
`scaml[scvi]`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import anndata as ad

import scaml
from scaml.benchmark import run_benchmark
from scaml.core import package_versions
from scaml.datasets import load_task
from scaml.metrics import compare_models

OUT = Path(__file__).with_name("scanvi.json")
SCAML_MODELS = ["lr", "rf", "xgb", "mlp"]
TASKS = ["tm_facs_to_droplet", "tm_droplet_to_facs", "kang_ctrl_to_stim", "kang_stim_to_ctrl"]


def build(name: str) -> ad.AnnData:
    "The cells of task `name`, counts in X, obs `label` and `split` (train/test)."
    if name == "tm_facs_to_droplet": return load_task(name)
    if name == "tm_droplet_to_facs":
        a = load_task("tm_facs_to_droplet")
        a.obs["split"] = a.obs["split"].map({"train": "test", "test": "train"}).astype(str)
        return a
    if name in ("kang_ctrl_to_stim", "kang_stim_to_ctrl"): return load_task(name)
    raise SystemExit(f"unknown task {name!r}; choose from {', '.join(TASKS)}")


def run_task(name: str, max_epochs, a: ad.AnnData | None = None, scaml_models: list[str] = SCAML_MODELS,
             scanvi_params: dict | None = None) -> dict:
    "Task `name` (or the cells `a` given for it) with `scaml_models` and scanvi (`max_epochs`, then `scanvi_params`)."
    if a is None: a = build(name)
    t0 = time.perf_counter()
    res = run_benchmark(a, label_key="label", split_key="split", train="train", test="test",
                        models=[*scaml_models, "scanvi"],
                        model_params={"scanvi": {"max_epochs": max_epochs, **(scanvi_params or {})}},
                        progress=False, plots=False)
    wall = time.perf_counter() - t0
    t = res.manifest["timings"]
    sc = res.models["scanvi"].backend
    models = {}
    for m in res.metrics:
        ci = res.metrics[m]["ci"]
        models[m] = {"f1_macro": round(res.metrics[m]["f1_macro"], 4),
                     "f1_macro_ci95": [round(ci["f1_macro"]["lo"], 4), round(ci["f1_macro"]["hi"], 4)],
                     "accuracy": round(res.metrics[m]["accuracy"], 4),
                     "accuracy_ci95": [round(ci["accuracy"]["lo"], 4), round(ci["accuracy"]["hi"], 4)],
                     "ece": round(res.metrics[m]["ece"], 4), "fit_s": round(t[f"{m}_fit_s"], 1)}
    y = res.predictions["scanvi"]["y_true"].to_numpy()
    train_classes = sorted(set(a.obs["label"][a.obs["split"] == "train"]))
    compare = {}
    for m in scaml_models:
        c = compare_models(y, res.proba["scanvi"].to_numpy(), res.proba[m].to_numpy(), res.classes,
                           names=("scanvi", m), train_classes=train_classes, n_boot=1000)
        d = c["diff"]["f1_macro"]
        compare[m] = {"f1_macro_diff": round(d["estimate"], 4), "f1_macro_diff_ci95": [round(d["lo"], 4), round(d["hi"], 4)],
                      "mcnemar_p": float(f"{c['mcnemar']['p_value']:.3g}"), "scanvi_only_correct": c["mcnemar"]["a_only"],
                      f"{m}_only_correct": c["mcnemar"]["b_only"], "verdict": c["verdict"]}
    best = max(scaml_models, key=lambda m: models[m]["f1_macro"])
    return {"n_train": res.manifest["n_train"], "n_test": res.manifest["n_test"], "n_genes": res.manifest["n_features"],
            "classes": res.classes, "scvi_epochs": sc.scvi_epochs_, "scanvi_epochs": sc.params["scanvi_epochs"],
            "max_epochs": max_epochs, "scvi_train_s": round(sc.scvi_s_, 1), "scanvi_train_s": round(sc.scanvi_s_, 1),
            "scaml_default_models_fit_s": round(sum(t[f"{m}_fit_s"] for m in scaml_models), 1),
            "wall_s": round(wall, 1), "models": models, "best_scaml_model": best,
            "scanvi_minus_best_scaml_f1_macro": round(models["scanvi"]["f1_macro"] - models[best]["f1_macro"], 4),
            "scanvi_vs": compare}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tasks", nargs="*", default=TASKS[:1], help=f"tasks: {', '.join(TASKS)}")
    p.add_argument("--max-epochs", default="auto", help="scVI epochs: 'auto' (scvi-tools' default) or a number")
    p.add_argument("--out", type=Path, default=OUT, help="JSON file to update (default benchmarks/scanvi.json; a "
                                                         "temporary file with --smoke)")
    p.add_argument("--smoke", action="store_true", help="300 cells of tm_facs_to_droplet, lr and scanvi (2 scVI + 2 "
                                                        "scANVI epochs): checks that the script runs")
    args = p.parse_args(argv)
    max_epochs = args.max_epochs if args.max_epochs == "auto" else int(args.max_epochs)
    run = run_task
    if args.smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _smoke import smoke_out, tiny
        args.out = smoke_out(None if args.out == OUT else str(args.out), OUT.name)
        args.tasks, max_epochs = ["tm_facs_to_droplet"], 2
        def run(name, max_epochs):
            return run_task(name, max_epochs, tiny(build(name), 300, "label", per_value=10), ["lr"],
                            {"scanvi_epochs": 2, "n_samples_per_label": 20})
    out = json.loads(args.out.read_text()) if args.out.exists() else {"tasks": {}}
    for name in args.tasks:
        r = run(name, max_epochs)
        out["tasks"][name] = r
        out.update(scaml_version=scaml.__version__, versions=package_versions(("scvi-tools", "lightning")),
                   machine={"platform": platform.platform(), "python": platform.python_version(),
                            "n_cpus": os.cpu_count(), "note": "CPU; a machine shared with other jobs (wall times vary)"})
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        s = r["models"]
        print(f"{name}: scanvi macro-F1 {s['scanvi']['f1_macro']:.3f} {s['scanvi']['f1_macro_ci95']} vs best scaml "
              f"{r['best_scaml_model']} {s[r['best_scaml_model']]['f1_macro']:.3f}; scanvi {r['scvi_train_s'] + r['scanvi_train_s']:.0f}s "
              f"({r['scvi_epochs']} + {r['scanvi_epochs']} epochs), scaml's four {r['scaml_default_models_fit_s']:.0f}s", flush=True)
        for c in r["scanvi_vs"].values(): print("   ", c["verdict"], flush=True)


if __name__ == "__main__":
    main()
