"""Measure how much a busy machine slows a run: the same `scaml train` quiet and next to one CPU-bound process.

A competitor (a Python busy loop, one CPU) runs for the whole of each busy run. Both cases run twice: with scaml's
thread limits (`limit_threads`: pools sized to the CPUs this process may use, OpenMP waiting passively) and without
them (`--n-threads 0`, `OMP_WAIT_POLICY` unset: the libraries' own defaults, scaml's behaviour before the limits).
Runs alternate quiet/busy so that other load on the machine hits both alike; the median wall time of each case and
the ratio busy/quiet are written to benchmarks/results.json (workloads `busy:<task>` and `busy_nolimit:<task>`). Usage:

    python benchmarks/busy.py                          # the 5k-cell TM FACS task, lr rf xgb mlp, 3 runs per case
    python benchmarks/busy.py --repeat 5 --workload tm_facs_to_droplet
    python benchmarks/busy.py --no-write               # print only
    python benchmarks/busy.py --smoke --out /tmp/r.json  # 300 cells, lr, one run each: that it runs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _smoke import TASK_ARGS, smoke_out, tiny_task_file  # noqa: E402
from run import RESULTS, cpu_model, machine, same_run  # noqa: E402

COMPETITOR = "while True: pass"

def run_once(dataset: str, models: list[str], limits: bool) -> dict:
    "One `scaml train` in a fresh process (`dataset`: a name, or an .h5ad task file); wall time, peak RSS, timings."
    source = ["--adata", dataset, *TASK_ARGS] if dataset.endswith(".h5ad") else ["--dataset", dataset]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "res"
        cmd = [sys.executable, "-m", "scaml.cli", "train", *source, "--models", *models,
               "--outdir", str(out), "--quiet", *([] if limits else ["--n-threads", "0"])]
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
        for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"): env.pop(k, None)
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0: raise RuntimeError(f"{dataset} failed:\n{proc.stderr.read()}")
        man = json.loads((out / "manifest.json").read_text())
        summary = json.loads((out / "summary_metrics.json").read_text())
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "n_threads": man.get("n_threads"),
            "fit_s": {m: round(man["timings"][f"{m}_fit_s"], 2) for m in models},
            "f1_macro": {m: round(summary[m]["f1_macro"], 4) for m in models}, "n_cells": man["n_train"] + man["n_test"]}

def busy_run(dataset: str, models: list[str], limits: bool) -> dict:
    "`run_once` while one CPU-bound competitor process runs."
    comp = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        time.sleep(0.5)                  # let it reach full speed
        return run_once(dataset, models, limits)
    finally:
        comp.kill(); comp.wait()

def measure(dataset: str, models: list[str], limits: bool, repeat: int) -> dict:
    "Quiet and busy runs, alternating; the record with the medians and the ratio."
    quiet, busy, loads = [], [], []
    for _ in range(repeat):
        loads.append(os.getloadavg()[0])
        quiet.append(run_once(dataset, models, limits))
        busy.append(busy_run(dataset, models, limits))
    q, b = (statistics.median(r["wall_s"] for r in rs) for rs in (quiet, busy))
    fit = {m: {"quiet": statistics.median(r["fit_s"][m] for r in quiet), "busy": statistics.median(r["fit_s"][m] for r in busy)}
           for m in models}
    return {"workload": f"{'busy' if limits else 'busy_nolimit'}:{dataset}", "n_cells": quiet[0]["n_cells"],
            "models": models, "backend": "local", "device": "cpu", "cpu": cpu_model(), "thread_limits": limits,
            "n_threads": quiet[0]["n_threads"], "competitor": f"1 process: python -c {COMPETITOR!r}",
            "wall_s": q, "wall_s_busy": b, "busy_over_quiet": round(b / q, 2),
            "wall_s_runs": [r["wall_s"] for r in quiet], "wall_s_busy_runs": [r["wall_s"] for r in busy],
            "fit_s": fit, "peak_rss_mb": max(r["peak_rss_mb"] for r in quiet + busy),
            "f1_macro": quiet[0]["f1_macro"], "load_avg_1min": round(statistics.median(loads), 2),
            "cpus": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="actinn_tutorial", help="dataset or task name (default: the 5k-cell TM FACS task)")
    p.add_argument("--models", nargs="+", default=["lr", "rf", "xgb", "mlp"])
    p.add_argument("--repeat", type=int, default=3, help="runs per case; medians are recorded")
    p.add_argument("--only", choices=["limits", "nolimit"], help="measure one case only")
    p.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/results.json")
    p.add_argument("--out", help="results file to update (default benchmarks/results.json; a temporary file with --smoke)")
    p.add_argument("--smoke", action="store_true",
                   help="a 300-cell slice of tm_facs_to_droplet, lr, one quiet and one busy run: checks that the script runs")
    a = p.parse_args(argv)
    results = Path(a.out) if a.out else RESULTS
    if a.smoke:
        results = smoke_out(a.out, RESULTS.name)
        a.workload, a.models, a.repeat, a.only = str(tiny_task_file(results.parent)), ["lr"], 1, "limits"
    recs = []
    for limits in (True, False):
        if a.only and a.only != ("limits" if limits else "nolimit"): continue
        r = measure(a.workload, a.models, limits, a.repeat)
        recs.append(r)
        print(f"{r['workload']:32s} quiet {r['wall_s']:6.1f}s {r['wall_s_runs']}  busy {r['wall_s_busy']:6.1f}s "
              f"{r['wall_s_busy_runs']}  busy/quiet {r['busy_over_quiet']:.2f}  (load avg {r['load_avg_1min']}, "
              f"{r['n_threads']} threads)  fit quiet/busy: "
              + " ".join(f"{m}={v['quiet']:.1f}/{v['busy']:.1f}s" for m, v in r["fit_s"].items()), flush=True)
    if not a.no_write:
        old = json.loads(results.read_text()) if results.exists() else {"records": []}
        keep = [o for o in old["records"] if not any(same_run(o, r) for r in recs)]
        results.write_text(json.dumps({"machine": machine(), "records": keep + recs}, indent=1) + "\n")
        print(f"wrote {results}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
