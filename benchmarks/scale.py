"""Scale-up workloads: atlases of 10k to 10M cells resampled from real Tabula Muris droplet (10x) counts.

Each atlas is built by `scaml.streaming.resample_counts` from the 1,000 droplet cells of the ACTINN repository
(`droplet_source`: 2,000 genes, 5 cell types, a fifth of the source cells held out so that test cells are resamples of
cells no training cell comes from) into benchmarks/out/ (not committed; about 2.6 GB per million cells, checked
against the free disk first, deleted after the run unless --keep), then `scaml train --backed --engine out-of-core`
runs on it in a fresh process; wall time, peak RSS (VmHWM), the memory timeline and metrics go to
benchmarks/results.json (timeline: benchmarks/out/run_N_rss.json), and the 10M record gets its growth over 1M.
`--floor` adds the disk's floor (one bare sequential h5py read of the matrix, and `cat file > /dev/null`) and the ratio
of the run's wall time to it; `--before DIR` runs the code in DIR (an export of an earlier commit) and this code
alternately on the same file, and records both with their ratios (phases, peak RSS) as `<workload>_ab`.

    python benchmarks/scale.py 1000000 3000000 10000000       # lr xgb actinn
    python benchmarks/scale.py 100000 --engine streaming      # features held in memory, for comparison
    python benchmarks/scale.py --smoke --out /tmp/r.json     # 2,000 cells, lr, in a temporary folder: that it runs
    python benchmarks/scale.py 1000000 --floor --before /tmp/scaml_before   # before/after, alternating, with the floor
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import RESULTS, cpu_model, machine, same_run  # noqa: E402

WORK = HERE / "out"          # atlases and run folders (a temporary folder with --smoke)

def droplet_source(random_state: int = 0):
    """The 1,000 Tabula Muris droplet (10x) cells on 2,000 genes, a fifth of them (stratified) held out as test sources.

    Genes: the 1,600 most variable plus the 400 most often detected of the rest, which gives the resampled cells the
    density of an atlas on 2,000 genes (about 320 stored values per cell).
    """
    import numpy as np
    import scanpy as sc
    from sklearn.model_selection import train_test_split
    from scaml.datasets import load_dataset
    a = load_dataset("actinn_tm_droplet")
    b = a.copy(); sc.pp.normalize_total(b, target_sum=1e4); sc.pp.log1p(b)
    disp = sc.pp.highly_variable_genes(b, n_top_genes=a.n_vars, inplace=False)["dispersions_norm"]
    hvg = np.argsort(-np.nan_to_num(disp.to_numpy(), nan=-np.inf))[:1600]
    detected = np.asarray((a.X > 0).sum(0)).ravel().astype(float); detected[hvg] = -1
    src = a[:, np.sort(np.concatenate([hvg, np.argsort(-detected)[:400]]))].copy()
    _, te = train_test_split(np.arange(src.n_obs), test_size=0.2, stratify=src.obs["cell_type"], random_state=random_state)
    src.obs["split"] = "train"; src.obs.iloc[te, src.obs.columns.get_loc("split")] = "test"
    return src

def atlas(n: int) -> Path:
    """The atlas of `n` cells resampled (in random order) from `droplet_source`: test cells only from its held-out
    source cells, so no test profile is a resample of a training one."""
    out = WORK; out.mkdir(exist_ok=True)
    path = out / f"tm_droplet_resampled_{n}.h5ad"
    if not path.exists():
        from scaml.streaming import resample_counts
        free = shutil.disk_usage(out).free
        need = n * 2700                      # about 320 stored values of 8 bytes per cell, plus obs
        if free < need * 1.5:
            raise SystemExit(f"{n:,} cells need about {need / 2**30:.0f} GiB; {out} has {free / 2**30:.0f} GiB free")
        t = time.perf_counter()
        resample_counts(droplet_source(), n, path, keep_obs=["cell_type", "split"], shuffle=True, random_state=0)
        print(f"built {path.name} in {time.perf_counter() - t:.1f}s ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    return path

def _rss_mb(pid: int) -> tuple[float, float] | None:
    "Resident memory and its peak so far (VmRSS, VmHWM; MB) of a running process, or None once it is gone."
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return None

def floor(path: Path) -> dict:
    """The disk's floor for `path`: `cat file > /dev/null`, and one bare sequential h5py read of the whole matrix
    (`X/indptr`, `X/data`, `X/indices` in 64 MiB slices, no transform). Seconds; the page cache is left as it is."""
    import h5py
    t = time.perf_counter()
    subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)
    cat_s = time.perf_counter() - t
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        for k in ("indptr", "data", "indices"):
            d = f["X"][k]
            step = max(1, 2**26 // d.dtype.itemsize)
            for s in range(0, d.shape[0], step): d[s:s + step]
    h5_s = time.perf_counter() - t
    return {"cat_s": round(cat_s, 1), "h5py_read_s": round(h5_s, 1), "file_gb": round(path.stat().st_size / 1e9, 2),
            "cat_gb_per_s": round(path.stat().st_size / 1e9 / cat_s, 2)}

def run(n: int, models: list[str], device: str, engine: str = "out-of-core", code: str | None = None,
        tag: str = "") -> dict:
    """One `scaml train` on the `n`-cell atlas in a fresh process (`code`: the folder its `scaml` is imported from);
    peak RSS from the kernel (`ru_maxrss` of the finished process) and the VmHWM seen while it ran."""
    path = atlas(n)
    out = WORK / f"run_{n}{tag}"
    cmd = [sys.executable, "-m", "scaml.cli", "train", "--adata", str(path), "--backed", "--label-key", "cell_type",
           "--split-key", "split", "--split-train", "train", "--split-test", "test", "--models", *models,
           "--engine", engine, "--device", device, "--outdir", str(out), "--overwrite", "--no-plots", "--quiet"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if code: env["PYTHONPATH"] = str(code)
    err = WORK / f"run_{n}{tag}.stderr"
    load0 = os.getloadavg()[0]                   # the machine is shared: its load before and after each run
    t = time.perf_counter()
    with open(err, "w") as fe:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fe, env=env)
        timeline, peak = [], 0.0                  # (seconds, RSS MB) every 2 s: where memory goes
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                wall, rc = time.perf_counter() - t, os.waitstatus_to_exitcode(status)
                peak = max(peak, ru.ru_maxrss / 1024)
                break
            m = _rss_mb(proc.pid)
            if m is not None:
                timeline.append((round(time.perf_counter() - t, 1), round(m[0]))); peak = max(peak, m[1])
            time.sleep(1)
    proc.returncode = rc
    if rc != 0: raise RuntimeError(err.read_text()[-3000:])
    (WORK / f"run_{n}{tag}_rss.json").write_text(json.dumps(timeline))
    summary = json.loads((out / "summary_metrics.json").read_text())
    man = json.loads((out / "manifest.json").read_text())
    tm = man["timings"]
    fit = sum(tm[f"{m}_fit_s"] for m in models); pred = sum(tm[f"{m}_predict_s"] for m in models)
    best = max(summary, key=lambda m: summary[m]["f1_macro"])
    return {"workload": f"tm_droplet_resampled_{n}", "n_cells": n, "n_train": man["n_train"], "n_test": man["n_test"],
            "n_genes": man["n_genes_input"], "file_gb": round(path.stat().st_size / 1e9, 2), "models": models,
            "backend": "local", "engine": man["engine"], "device": device, "cpu": cpu_model(),
            "wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1),
            "train_cells_per_s": round(man["n_train"] * len(models) / fit, 1),
            "predict_cells_per_s": round(man["n_test"] * len(models) / pred, 1),
            "f1_macro": round(summary[best]["f1_macro"], 4), "best_model": best,
            "per_model": {m: {"f1_macro": round(summary[m]["f1_macro"], 4), "accuracy": round(summary[m]["accuracy"], 4),
                              "fit_s": round(tm[f"{m}_fit_s"], 1), "predict_s": round(tm[f"{m}_predict_s"], 1)}
                          for m in models},
            "timings": {k: round(v, 1) for k, v in tm.items()}, "load_avg_1min": round(os.getloadavg()[0], 2),
            "load_avg_1min_start": round(load0, 2),
            "code": "this checkout" if code is None else str(code),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

def growth(records: list[dict], engine: str = "out-of-core") -> dict | None:
    "Time and peak memory of the 10M-cell run over the 1M-cell one (same engine, latest records)."
    by_n = {r["n_cells"]: r for r in records if r["workload"] == f"tm_droplet_resampled_{r['n_cells']}"
            and r.get("engine") == engine}                       # single runs, not the before/after pairs
    if 1_000_000 not in by_n or 10_000_000 not in by_n: return None
    a, b = by_n[1_000_000], by_n[10_000_000]
    return {"cells": 10.0, "wall": round(b["wall_s"] / a["wall_s"], 2), "peak_rss": round(b["peak_rss_mb"] / a["peak_rss_mb"], 2)}

def ab(before: dict, after: dict, name: str = "") -> dict:
    """One record of a before/after pair on the same atlas, run one after the other: both runs and after / before
    (workload `<atlas>_ab`, or `<atlas>_<name>_ab` to keep the records of earlier pairs)."""
    keys = ("wall_s", "peak_rss_mb", "timings", "per_model", "load_avg_1min", "load_avg_1min_start", "code", "date",
            "f1_macro")
    ratio = {k: round(after[k] / before[k], 3) for k in ("wall_s", "peak_rss_mb")}
    ratio["phases"] = {k: round(after["timings"][k] / before["timings"][k], 2) for k in after["timings"]
                       if before["timings"].get(k)}
    same = {m: after["per_model"][m]["accuracy"] == before["per_model"][m]["accuracy"]
            and after["per_model"][m]["f1_macro"] == before["per_model"][m]["f1_macro"] for m in after["per_model"]}
    return {"workload": after["workload"] + (f"_{name}" if name else "") + "_ab", "n_cells": after["n_cells"], "models": after["models"],
            "device": after["device"], "cpu": after["cpu"], "engine": after["engine"], "order": "before, then after",
            "before": {k: before[k] for k in keys}, "after": {k: after[k] for k in keys},
            "after_over_before": ratio, "same_scores": same, "identical_outputs": same_outputs(after["n_cells"]),
            "floor": after.get("floor")}

def same_outputs(n: int) -> dict:
    "Whether each predictions / probabilities CSV of the two runs' folders is byte for byte the same."
    import filecmp
    a, b = WORK / f"run_{n}_before", WORK / f"run_{n}"
    files = sorted(str(f.relative_to(b)) for f in b.rglob("*.csv") if "predictions" in f.name or "proba" in f.name)
    return {f: (a / f).exists() and filecmp.cmp(a / f, b / f, shallow=False) for f in files}

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    p.add_argument("--models", nargs="+", default=["lr", "xgb", "actinn"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--engine", default="out-of-core", choices=["out-of-core", "streaming"])
    p.add_argument("--keep", action="store_true", help="keep the generated atlas files (deleted after each run by default)")
    p.add_argument("--out", help="results file to update (default benchmarks/results.json; a temporary file with --smoke)")
    p.add_argument("--floor", action="store_true",
                   help="also time the disk's floor (cat, bare h5py read) and record the ratio wall / floor")
    p.add_argument("--before", help="a folder holding an earlier scaml (git archive REV scaml | tar -x -C DIR): run "
                                    "it and this code alternately on each atlas, and record both as <workload>_ab")
    p.add_argument("--name", default="", help="with --before: record the pair as <workload>_<name>_ab (keeps earlier pairs)")
    p.add_argument("--smoke", action="store_true",
                   help="one 2,000-cell atlas, lr, in a temporary folder: checks that the script runs")
    a = p.parse_args(argv)
    results = Path(a.out) if a.out else RESULTS
    if a.smoke:
        global WORK
        from _smoke import smoke_out
        results = smoke_out(a.out, RESULTS.name)
        WORK, a.sizes, a.models = results.parent / "out", [2000], ["lr"]
    res = json.loads(results.read_text()) if results.exists() else {"records": []}
    for n in a.sizes:
        fl = floor(atlas(n)) if a.floor else None
        before = run(n, a.models, a.device, a.engine, code=a.before, tag="_before") if a.before else None
        r = run(n, a.models, a.device, a.engine)
        if fl:
            fl["wall_over_h5py_read"] = round(r["wall_s"] / max(fl["h5py_read_s"], 0.1), 1)
            fl["wall_over_cat"] = round(r["wall_s"] / max(fl["cat_s"], 0.1), 1)
            r["floor"] = fl
        if before:
            pair = ab(before, r, a.name)
            res["records"] = [o for o in res["records"] if o["workload"] != pair["workload"]] + [pair]
        if not a.keep: atlas(n).unlink()
        print(f"{r['workload']:28s} wall {r['wall_s']:7.1f}s rss {r['peak_rss_mb']:8.1f} MB f1 {r['f1_macro']:.4f} "
              + " ".join(f"{m}:{v['fit_s']}s" for m, v in r["per_model"].items()), flush=True)
        if not before: res["records"] = [o for o in res["records"] if not same_run(o, r)] + [r]   # a pair: _ab only
        res["machine"] = machine()
        g = growth(res["records"])
        if g and n == 10_000_000: r["growth_from_1m"] = g
        results.write_text(json.dumps(res, indent=1) + "\n")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
