"""Scale-up workloads: synthetic atlases of 10k, 100k and 1M cells resampled from real Tabula Muris counts.

Each atlas is built once by `scaml.streaming.resample_counts` from the DeepChem/ACTINN Tabula Muris FACS task
(2,000 genes, 12 cell types, its train/test split kept as the batch) into benchmarks/out/ (not committed), then
`scaml train --backed` runs on it in a fresh process; wall time, peak RSS and metrics go to benchmarks/results.json.

    python benchmarks/scale.py 10000 100000            # sizes
    python benchmarks/scale.py 1000000 --models lr xgb actinn
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import RESULTS, cpu_model, machine, same_run  # noqa: E402

def atlas(n: int) -> Path:
    out = HERE / "out"; out.mkdir(exist_ok=True)
    path = out / f"tm_facs_resampled_{n}.h5ad"
    if not path.exists():
        from scaml.datasets import load_task
        from scaml.streaming import resample_counts
        t = time.perf_counter()
        resample_counts(load_task("actinn_tutorial"), n, path, keep_obs=["label", "split"], random_state=0)
        print(f"built {path.name} in {time.perf_counter() - t:.1f}s ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    return path

def run(n: int, models: list[str], device: str) -> dict:
    path = atlas(n)
    out = HERE / "out" / f"run_{n}"
    cmd = [sys.executable, "-m", "scaml.cli", "train", "--adata", str(path), "--backed", "--label-key", "label",
           "--split-key", "split", "--split-train", "train", "--split-test", "test", "--models", *models,
           "--device", device, "--outdir", str(out), "--overwrite", "--no-plots", "--quiet"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0: raise RuntimeError(proc.stderr.read())
    summary = json.loads((out / "summary_metrics.json").read_text())
    man = json.loads((out / "manifest.json").read_text())
    tm = man["timings"]
    fit = sum(tm[f"{m}_fit_s"] for m in models); pred = sum(tm[f"{m}_predict_s"] for m in models)
    best = max(summary, key=lambda m: summary[m]["f1_macro"])
    return {"workload": f"tm_facs_resampled_{n}", "n_cells": n, "n_train": man["n_train"], "n_test": man["n_test"],
            "n_genes": man["n_genes_input"], "models": models, "backend": "local", "device": device, "cpu": cpu_model(),
            "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "train_cells_per_s": round(man["n_train"] * len(models) / fit, 1),
            "predict_cells_per_s": round(man["n_test"] * len(models) / pred, 1),
            "f1_macro": round(summary[best]["f1_macro"], 4), "best_model": best,
            "per_model": {m: {"f1_macro": round(summary[m]["f1_macro"], 4), "accuracy": round(summary[m]["accuracy"], 4),
                              "fit_s": round(tm[f"{m}_fit_s"], 1), "predict_s": round(tm[f"{m}_predict_s"], 1)}
                          for m in models},
            "timings": {k: round(v, 1) for k, v in tm.items()}, "load_avg_1min": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    p.add_argument("--models", nargs="+", default=["lr", "xgb", "actinn"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    a = p.parse_args(argv)
    res = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"records": []}
    for n in a.sizes:
        r = run(n, a.models, a.device)
        print(f"{r['workload']:28s} wall {r['wall_s']:7.1f}s rss {r['peak_rss_mb']:8.1f} MB f1 {r['f1_macro']:.4f} "
              + " ".join(f"{m}:{v['fit_s']}s" for m, v in r["per_model"].items()), flush=True)
        res["records"] = [o for o in res["records"] if not same_run(o, r)] + [r]
        res["machine"] = machine()
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
