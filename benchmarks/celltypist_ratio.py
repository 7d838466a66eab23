"""Time scaml's default 4-model run against CellTypist's LR-only training and annotation on the same split.

Usage:

    python benchmarks/celltypist_ratio.py                  # actinn_tutorial (5,000 cells), 3 alternating rounds
    python benchmarks/celltypist_ratio.py --rounds 5 --ct-python /work/venv-ct/bin/python
    python benchmarks/celltypist_ratio.py --smoke --out /tmp/ct.json
                                                           # 300 cells, one round: that the script runs (seconds)

Each round runs, each in a fresh process (imports included, as a user runs them), one after the other:
(a) `scaml train` with the default models (lr rf xgb mlp) and defaults on the task's train/test split, and
(b) in CellTypist's own Python (a separate virtual environment: CellTypist is not a dependency of scaml)
`celltypist.train` with its defaults (logistic regression, no SGD, no feature selection) on the train cells
normalised to 1e4 counts per cell and log1p-transformed, as CellTypist requires, then `celltypist.annotate` on the
test cells (best match, no majority voting). The order alternates between rounds (a, b then b, a ...), so a change
of load on the machine falls on both sides. Recorded per round: both wall times, their ratio scaml / CellTypist,
both macro-F1 on the test cells and the 1-minute load average before and after; then the median ratio. The record
goes to benchmarks/results.json under the key "celltypist_ratio" (a list: each run appends its dated record; other
keys are kept).

CellTypist 1.7.1 passes `multi_class` to scikit-learn's LogisticRegression, which scikit-learn 1.7 removed: its
environment pins scikit-learn < 1.7 (`python3.11 -m venv V && V/bin/pip install celltypist==1.7.1 "scikit-learn<1.7"`).
When CellTypist's Python is missing, its side is skipped with a printed reason and only scaml's side is timed.
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
RESULTS = HERE / "results.json"
KEY = "celltypist_ratio"
TASK_ARGS = ["--label-key", "label", "--split-key", "split", "--split-train", "train", "--split-test", "test"]
CT_PYTHON = "/work/venv-ct/bin/python"

# run by CellTypist's Python: argv = task.h5ad, predictions.csv
CT_DRIVER = r"""
import sys
import numpy as np, scanpy as sc, celltypist
from sklearn.metrics import f1_score
a = sc.read_h5ad(sys.argv[1])
sc.pp.normalize_total(a, target_sum=1e4)
sc.pp.log1p(a)
tr, te = a[a.obs["split"] == "train"].copy(), a[a.obs["split"] == "test"].copy()
model = celltypist.train(tr, labels="label")
pred = celltypist.annotate(te, model=model).predicted_labels["predicted_labels"].astype(str)
pred.to_csv(sys.argv[2])
print(f1_score(te.obs["label"].astype(str).to_numpy(), pred.reindex(te.obs_names).to_numpy(), average="macro"))
"""


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    "Wall seconds of `cmd` in a fresh process, and its stdout; a clear error with its stderr when it fails."
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return wall, p.stdout


def run_scaml(task: Path, outdir: Path) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "scaml.cli", "train", "--adata", str(task), *TASK_ARGS, "--outdir", str(outdir),
           "--quiet"]
    wall, _ = _timed(cmd, env)
    summary = json.loads((outdir / "summary_metrics.json").read_text())
    return {"wall_s": round(wall, 2), "f1_macro": {m: round(v["f1_macro"], 4) for m, v in summary.items()}}


def run_celltypist(python: str, task: Path, workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    wall, out = _timed([python, "-c", CT_DRIVER, str(task), str(workdir / "celltypist_predictions.csv")], env)
    return {"wall_s": round(wall, 2), "f1_macro": round(float(out.strip().splitlines()[-1]), 4)}


def celltypist_version(python: str) -> str | None:
    p = subprocess.run([python, "-c", "from importlib.metadata import version as v; "
                        "print(v('celltypist'), v('scikit-learn'), v('scanpy'))"], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="actinn_tutorial", help="a benchmark task name (scaml.datasets.list_tasks())")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (each runs both sides once)")
    p.add_argument("--ct-python", default=CT_PYTHON, help="the Python of CellTypist's virtual environment")
    p.add_argument("--out", default=str(RESULTS), help="results file to update (key 'celltypist_ratio')")
    p.add_argument("--smoke", action="store_true",
                   help="300 cells of tm_facs_to_droplet, one round, written to --out or a temporary file: checks "
                        "that the script runs; the numbers mean nothing")
    a = p.parse_args(argv)
    if a.rounds < 1: p.error(f"--rounds {a.rounds}: give at least 1")
    sys.path.insert(0, str(HERE))
    work = Path(tempfile.mkdtemp(prefix="scaml_ct_"))
    if a.smoke:
        from _smoke import smoke_out, tiny_task_file
        out = smoke_out(None if a.out == str(RESULTS) else a.out, RESULTS.name)
        task, a.rounds, name = tiny_task_file(work), 1, "smoke"
    else:
        from scaml.datasets import load_task
        out, name = Path(a.out), a.task
        task = work / f"{a.task}.h5ad"
        load_task(a.task).write_h5ad(task)
    ct_ver = celltypist_version(a.ct_python) if Path(a.ct_python).exists() else None
    if ct_ver is None:
        print(f"CellTypist side skipped: no Python with celltypist at --ct-python {a.ct_python} (make one with "
              f"`python3.11 -m venv V && V/bin/pip install celltypist==1.7.1 \"scikit-learn<1.7\"`)", flush=True)
    rounds = []
    for i in range(a.rounds):
        load0 = os.getloadavg()[0]
        order = ["scaml", "celltypist"] if i % 2 == 0 else ["celltypist", "scaml"]
        r = {"round": i + 1, "order": order if ct_ver else ["scaml"]}
        for side in r["order"]:
            if side == "scaml": r["scaml"] = run_scaml(task, work / f"scaml_{i}")
            else: r["celltypist"] = run_celltypist(a.ct_python, task, work)
        r["load_avg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        if ct_ver: r["ratio"] = round(r["scaml"]["wall_s"] / r["celltypist"]["wall_s"], 3)
        rounds.append(r)
        print(f"round {i + 1}: scaml {r['scaml']['wall_s']:.1f}s "
              + (f"celltypist {r['celltypist']['wall_s']:.1f}s ratio {r['ratio']:.2f} "
                 f"f1 celltypist {r['celltypist']['f1_macro']:.4f} " if ct_ver else "")
              + "f1 " + " ".join(f"{m}={v:.4f}" for m, v in r["scaml"]["f1_macro"].items())
              + f"  load {r['load_avg_1min']}", flush=True)
    from run import cpu_model, machine
    rec = {"task": name, "cpu": cpu_model(), "n_cpus": os.cpu_count(), "rounds": rounds,
           "scaml_wall_s_median": round(statistics.median(r["scaml"]["wall_s"] for r in rounds), 2),
           "celltypist": ct_ver and dict(zip(("celltypist", "scikit-learn", "scanpy"), ct_ver.split())),
           "celltypist_options": "celltypist.train defaults (LR, use_SGD=False, feature_selection=False) on "
                                 "normalize_total 1e4 + log1p; annotate majority_voting=False",
           "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if ct_ver:
        rec["celltypist_wall_s_median"] = round(statistics.median(r["celltypist"]["wall_s"] for r in rounds), 2)
        rec["ratio_median"] = round(statistics.median(r["ratio"] for r in rounds), 3)
        rec["target_ratio"] = 0.8
        print(f"median ratio scaml / celltypist: {rec['ratio_median']:.2f} (target at most 0.8)")
    old = json.loads(out.read_text()) if out.exists() else {}
    old[KEY] = [*old.get(KEY, []), rec]          # runs on a shared machine vary with its load: all are kept
    out.write_text(json.dumps(old, indent=1) + "\n")
    print(f"wrote {out} (key {KEY!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
