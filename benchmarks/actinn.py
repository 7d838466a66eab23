"""Benchmark the ACTINN backends: fit time and test accuracy / macro-F1.

Runs `actinn` and `actinn_deepchem` on the DeepChem tutorial split (ACTINN's preprocessing, seeds 0, 1, 2) and, on the
Tabula Muris FACS -> droplet task, both ACTINN backends with ACTINN's preprocessing, and beside the other scaml
models on the cross-batch benchmark's defaults (2,000 highly variable genes, scaled log1p, balanced class
weights). Writes `benchmarks/actinn_results.json`.

    SCAML_DATA_DIR=../shared/data python benchmarks/actinn.py
    python benchmarks/actinn.py --smoke --out /tmp/actinn.json   # 300 cells, one seed, one epoch: that it runs

It also measures time at equal accuracy: the DeepChem tutorial's own recipe (`TorchModel`, batch 100, lr 1e-4,
7 epochs) against native `actinn` trained for 1-5 epochs; the first epoch count whose mean test accuracy reaches the
recipe's is compared (`equal_accuracy_vs_deepchem_tutorial_recipe`). `speedup_same_training_native_vs_deepchem` compares
the two backends on identical training (same network, split, schedule and early stopping).

Imports happen before any timing (their cost is recorded separately as `import_s`), and each backend is warmed up
with a one-epoch fit, so `fit_s` is the wall time of `CellTypeModel.fit` (preprocessing included) in a warm process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

t0 = time.perf_counter()
import torch  # noqa: E402

IMPORT_S = {"torch": time.perf_counter() - t0}
try:
    t0 = time.perf_counter()
    from scaml.actinn import _import_deepchem
    DC_VERSION = _import_deepchem().__version__
    IMPORT_S["deepchem"] = time.perf_counter() - t0
except ImportError:
    DC_VERSION = None

from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

import scaml  # noqa: E402
from scaml.actinn import actinn_preprocessor  # noqa: E402
from scaml.datasets import load_task  # noqa: E402
from scaml.models import CellTypeModel  # noqa: E402
from scaml.preprocess import Preprocessor  # noqa: E402

SEEDS = [0, 1, 2]
EPOCHS = [1, 2, 3, 4, 5]

def machine() -> dict:
    "A description of the machine the numbers come from."
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
    except OSError: pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "n_cpus": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

def run(task_name: str, train, test, backend: str, seed: int, prep: str, class_weight: str | None = None,
        variant: str = "default", **params) -> dict:
    "Fit one model (with `params` over its defaults) and score it on the test cells."
    pp = actinn_preprocessor() if prep == "actinn" else Preprocessor()
    classes = sorted(set(train.obs["label"].astype(str)) | set(test.obs["label"].astype(str)))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = CellTypeModel(backend, preprocessor=pp, class_weight=class_weight, random_state=seed, **params)
    model.fit(train, label_key="label", classes=classes)
    fit_s = time.perf_counter() - t0
    pred = model.predict(test).astype(str).to_numpy()
    truth = test.obs["label"].astype(str).to_numpy()
    hist = getattr(model.backend, "history_", {})
    rec = {"backend": backend, "variant": variant, "params": params, "task": task_name, "preprocessing": prep,
           "class_weight": class_weight, "seed": seed,
           "fit_s": round(fit_s, 3),
           "accuracy": round(float(accuracy_score(truth, pred)), 4),
           "f1_macro": round(float(f1_score(truth, pred, average="macro", labels=sorted(set(truth)))), 4),
           "n_train": int(train.n_obs), "n_test": int(test.n_obs), "n_genes": len(model.preprocessor.features_),
           "epochs": hist.get("epochs"), "best_epoch": hist.get("best_epoch"), "load_avg_1min": round(load, 2),
           "torch": torch.__version__, "deepchem": DC_VERSION, "scaml": scaml.__version__}
    print(json.dumps(rec), flush=True)
    return rec

def summarise(records: list[dict]) -> list[dict]:
    "Mean and standard deviation over seeds."
    groups: dict[tuple, list[dict]] = {}
    for r in records: groups.setdefault((r["task"], r["preprocessing"], r["backend"], r["variant"]), []).append(r)
    out = []
    for (task, prep, backend, variant), rs in groups.items():
        row = {"task": task, "preprocessing": prep, "backend": backend, "variant": variant, "params": rs[0]["params"],
               "n_seeds": len(rs)}
        for k in ("accuracy", "f1_macro", "fit_s"):
            v = [r[k] for r in rs]
            row[f"{k}_mean"] = round(statistics.mean(v), 4)
            row[f"{k}_sd"] = round(statistics.stdev(v), 4) if len(v) > 1 else 0.0
        out.append(row)
    return out

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("actinn_results.json")))
    ap.add_argument("--others", nargs="*", default=["lr", "rf", "xgb", "mlp"],
                    help="other models to run on FACS -> droplet for comparison")
    ap.add_argument("--smoke", action="store_true",
                    help="300 cells of each task, one seed, one or two epochs, lr beside: checks that the script runs")
    args = ap.parse_args(argv)
    actinn = ["actinn"] + (["actinn_deepchem"] if DC_VERSION else [])
    global SEEDS, EPOCHS
    task = load_task
    if args.smoke:
        from _smoke import smoke_out, tiny
        args.out = str(smoke_out(None if args.out == ap.get_default("out") else args.out, "actinn_results.json"))
        SEEDS, EPOCHS, args.others = [0], [1, 2], ["lr"]
        def task(name): return tiny(load_task(name), 300, "label", per_value=10)

    tut = task("actinn_tutorial")
    ttr, tte = tut[tut.obs.split == "train"].copy(), tut[tut.obs.split == "test"].copy()
    for b in actinn:  # warm-up: first torch kernels, lazy imports
        CellTypeModel(b, preprocessor=actinn_preprocessor(), max_epochs=1).fit(ttr, label_key="label")
    records = [run("actinn_tutorial", ttr, tte, b, s, "actinn") for s in SEEDS for b in actinn]

    fd = task("tm_facs_to_droplet")
    ftr, fte = fd[fd.obs.split == "train"].copy(), fd[fd.obs.split == "test"].copy()
    records += [run("tm_facs_to_droplet", ftr, fte, b, s, "actinn") for s in SEEDS for b in actinn]
    records += [run("tm_facs_to_droplet", ftr, fte, b, s, "hvg_scaled", "balanced")
                for s in SEEDS for b in actinn + args.others]

    # equal accuracy: the DeepChem tutorial's own recipe (TorchModel's default batch of 100, lr 1e-4, 7 epochs, no
    # validation split) against native ACTINN trained for a fixed number of epochs with scaml's defaults
    if DC_VERSION:
        records += [run("actinn_tutorial", ttr, tte, "actinn_deepchem", s, "actinn", variant="deepchem_tutorial_recipe",
                        lr=1e-4, batch_size=100, val_fraction=0, max_epochs=7) for s in SEEDS]
    records += [run("actinn_tutorial", ttr, tte, "actinn", s, "actinn", variant=f"epochs_{e}", val_fraction=0,
                    max_epochs=e) for e in EPOCHS for s in SEEDS]

    summary = summarise(records)
    tut = {(r["backend"], r["variant"]): r for r in summary if r["task"] == "actinn_tutorial"}
    speedup = equal = None
    if DC_VERSION:
        speedup = tut[("actinn_deepchem", "default")]["fit_s_mean"] / tut[("actinn", "default")]["fit_s_mean"]
        dc = tut[("actinn_deepchem", "deepchem_tutorial_recipe")]
        reach = [tut[("actinn", f"epochs_{e}")] for e in EPOCHS
                 if tut[("actinn", f"epochs_{e}")]["accuracy_mean"] >= dc["accuracy_mean"]]
        if reach:
            nat = reach[0]
            equal = {"deepchem_tutorial_recipe": {k: dc[k] for k in ("params", "accuracy_mean", "accuracy_sd", "fit_s_mean")},
                     "native_first_at_least_as_accurate": {k: nat[k] for k in ("variant", "params", "accuracy_mean",
                                                                               "accuracy_sd", "fit_s_mean")},
                     "speedup": round(dc["fit_s_mean"] / nat["fit_s_mean"], 2)}
    out = {"machine": machine(), "import_s": {k: round(v, 2) for k, v in IMPORT_S.items()},
           "torch": torch.__version__, "deepchem": DC_VERSION, "scaml": scaml.__version__,
           "notes": "fit_s: wall time of CellTypeModel.fit (preprocessing included) after imports and a warm-up fit; "
                    "load_avg_1min: 1-minute load average just before the fit",
           "speedup_same_training_native_vs_deepchem": None if speedup is None else round(speedup, 2),
           "equal_accuracy_vs_deepchem_tutorial_recipe": equal,
           "summary": summary, "records": records}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in summary: print(r)
    print(f"wrote {args.out}")

if __name__ == "__main__":
    main()
