"""Run named benchmark workloads and write their numbers to benchmarks/results.json.

Each workload runs `scaml train` in a fresh process (imports included, as a user runs it) and records wall time, peak
RSS of that process, cells per second and the metrics of every model. Usage:

    python benchmarks/run.py                       # the real tasks (default set)
    python benchmarks/run.py tm_facs_to_droplet    # named workloads
    python benchmarks/run.py --list
    python benchmarks/run.py --compare             # rerun and compare with the committed results
    python benchmarks/run.py --repeat 5            # runs per workload (default 3): the median wall time is recorded
    python benchmarks/run.py tm_facs_to_droplet --dask-workers 1 2 --models lr rf xgb mlp actinn
                                                   # the dask engine on local clusters of 1 and 2 workers
    python benchmarks/run.py --smoke --output /tmp/results.json
                                                   # 300 cells, lr, one run: that the script runs (seconds)

Results of earlier runs are kept: a record is replaced only by a new record of the same workload, models, device and
processor model, so numbers from different machines stand side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DEFAULT_MODELS = ["lr", "rf", "xgb", "mlp"]

# name -> (dataset or task, extra scaml_train arguments)
WORKLOADS = {
    "actinn_tutorial": ("actinn_tutorial", []),
    "tm_facs_to_droplet": ("tm_facs_to_droplet", []),
    "cellbench_celseq2_to_dropseq": ("cellbench_celseq2_to_dropseq", []),
    "cellbench_plate1_to_plates23": ("cellbench_plate1_to_plates23", []),
}
# the best macro-F1 a widely used logistic-regression annotator reaches on the same tasks (the targets)
TARGETS_F1 = {"actinn_tutorial": 0.957, "tm_facs_to_droplet": 0.930, "cellbench_celseq2_to_dropseq": 1.0,
              "cellbench_plate1_to_plates23": 1.0}

def cpu_model() -> str:
    "The processor's model name (from /proc/cpuinfo where there is one)."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def same_run(a: dict, b: dict) -> bool:
    "Whether two records measure the same workload, models and device on the same kind of processor."
    return all(a.get(k, d) == b.get(k, d) for k, d in (("workload", None), ("models", None), ("device", None),
                                                         ("cpu", None), ("backend", "local")))

def machine() -> dict:
    pk = {}
    for p in ("scaml", "numpy", "scipy", "anndata", "scikit-learn", "xgboost", "torch"):
        try: pk[p] = version(p)
        except PackageNotFoundError: pass
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "cpu": cpu_model(), "packages": pk}

def run_workload(name: str, models: list[str], device: str = "cpu", repeat: int = 3, dask_workers: int | None = None) -> dict:
    "Run `name` `repeat` times in fresh processes; the record of the median wall time, with every wall and the peak RSS."
    runs = sorted((_run_once(name, models, device, dask_workers) for _ in range(repeat)), key=lambda r: r["wall_s"])
    rec = runs[len(runs) // 2]
    rec["wall_s_runs"] = [r["wall_s"] for r in runs]
    rec["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return rec

def _run_once(name: str, models: list[str], device: str = "cpu", dask_workers: int | None = None) -> dict:
    dataset, extra = WORKLOADS[name]
    source = ["--adata", dataset] if dataset.endswith(".h5ad") else ["--dataset", dataset]
    if dask_workers: extra = [*extra, "--dask-workers", str(dask_workers), "--block-size", "500"]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / name
        cmd = [sys.executable, "-m", "scaml.cli", "train", *source, "--models", *models,
               "--outdir", str(out), "--quiet", *extra]
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        err = proc.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{name} failed:\n{err}")
        summary = json.loads((out / "summary_metrics.json").read_text())
        manifest = json.loads((out / "manifest.json").read_text())
    tm = manifest["timings"]
    fit_s = sum(tm[f"{m}_fit_s"] for m in models)
    pred_s = sum(tm[f"{m}_predict_s"] for m in models)
    best = max(summary, key=lambda m: summary[m]["f1_macro"])
    return {
        "workload": name, "n_cells": manifest["n_train"] + manifest["n_test"], "n_train": manifest["n_train"],
        "n_test": manifest["n_test"], "n_genes": manifest["n_genes_input"], "n_features": manifest["n_features"],
        "models": models, "backend": f"dask-{dask_workers}" if dask_workers else "local", "device": device,
        "cpu": cpu_model(), "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "train_cells_per_s": round(manifest["n_train"] * len(models) / fit_s, 1),
        "predict_cells_per_s": round(manifest["n_test"] * len(models) / pred_s, 1),
        "f1_macro": round(summary[best]["f1_macro"], 4), "best_model": best,
        "target_f1_macro": TARGETS_F1.get(name),
        "per_model": {m: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary[m].items()}
                      | {"fit_s": round(tm[f"{m}_fit_s"], 2), "predict_s": round(tm[f"{m}_predict_s"], 3)}
                      for m in models},
        "timings": {k: round(v, 2) for k, v in tm.items()},
        "n_threads": manifest.get("n_threads"), "n_cpus": manifest.get("n_cpus"),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workloads", nargs="*", help="workload names (default: the real tasks)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--repeat", type=int, default=3, help="runs per workload; the median wall time is recorded")
    p.add_argument("--list", action="store_true", help="list the workloads")
    p.add_argument("--compare", action="store_true", help="compare the new numbers with benchmarks/results.json")
    p.add_argument("--output", default=str(RESULTS), help="results file to update")
    p.add_argument("--dask-workers", type=int, nargs="+", metavar="N",
                   help="run on the dask engine with local clusters of these sizes (peak RSS is the client's only)")
    p.add_argument("--smoke", action="store_true",
                   help="a 300-cell slice of tm_facs_to_droplet, lr, one run, written to --output or a temporary "
                        "file: checks that the script runs; the numbers mean nothing")
    a = p.parse_args(argv)
    if a.smoke:
        from _smoke import TASK_ARGS, smoke_out, tiny_task_file
        out = smoke_out(None if a.output == str(RESULTS) else a.output, RESULTS.name)
        WORKLOADS["smoke"] = (str(tiny_task_file(out.parent)), TASK_ARGS)
        a.workloads, a.models, a.repeat, a.output = ["smoke"], ["lr"], 1, str(out)
    if a.list:
        print("\n".join(WORKLOADS)); return 0
    names = a.workloads or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown: p.error(f"unknown workloads {unknown}; see --list")
    out = Path(a.output)
    old = json.loads(out.read_text()) if out.exists() else {"records": []}
    new = []
    for n, w in [(n, w) for n in names for w in (a.dask_workers or [None])]:
        r = run_workload(n, a.models, repeat=a.repeat, dask_workers=w)
        new.append(r)
        label = n + (f" dask-{w}" if w else "")
        print(f"{label:32s} wall {r['wall_s']:6.1f}s (runs {r['wall_s_runs']})  rss {r['peak_rss_mb']:7.1f} MB  best {r['best_model']} "
              f"f1_macro {r['f1_macro']:.4f} (target {r['target_f1_macro']})  "
              + " ".join(f"{m}={v['f1_macro']:.3f}/{v['fit_s']:.1f}s" for m, v in r["per_model"].items()), flush=True)
        if a.compare:
            prev = [o for o in old["records"] if o["workload"] == n and o["models"] == r["models"]]
            prev = [o for o in prev if same_run(o, r)] or prev
            if prev:
                o = prev[-1]
                other = "" if same_run(o, r) else f"  (measured on another processor: {o.get('cpu')})"
                print(f"{'':32s} before: wall {o['wall_s']:6.1f}s  rss {o['peak_rss_mb']:7.1f} MB  "
                      f"f1_macro {o['f1_macro']:.4f}{other}")
    keep = [o for o in old["records"] if not any(same_run(o, r) for r in new)]
    if not a.compare:
        out.write_text(json.dumps({**old, "machine": machine(), "records": keep + new}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
