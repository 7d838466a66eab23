"""Streaming prediction at atlas scale: `scaml_predict --backed` on queries of 100k to millions of cells.

The queries are the atlases of `scale.py` (resampled by `scaml.streaming.resample_counts` from the 1,000 Tabula Muris
droplet cells, 2,000 genes, about 320 stored values a cell). A saved `lr` and a saved `actinn` model, trained on the
source's training cells, annotate each one in a fresh process (`scaml_predict --backed --out predictions.csv`, and at
the smallest size also `--h5ad-out`); wall time and peak RSS (VmHWM) go to benchmarks/results.json as
`predict_backed_tm_droplet_N` records, with the growth of peak memory over the smallest size.

    nice python benchmarks/predict_scale.py 100000 1000000 3000000
    nice python benchmarks/predict_scale.py 1000000 10000000 --no-h5ad     # predictions only, growth 1M -> 10M
    nice python benchmarks/predict_scale.py 1000000 --models lr --in-memory     # the query read whole, for comparison
    python benchmarks/predict_scale.py --smoke --out /tmp/r.json    # 3,000 cells, lr, in a temporary folder: that it runs
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
import scale  # noqa: E402
from run import RESULTS, cpu_model, machine, same_run  # noqa: E402
from scale import _rss_mb, atlas, droplet_source  # noqa: E402

MODELS = {"lr": {}, "actinn": {}}
WORK = HERE / "out"          # saved models and prediction folders (a temporary folder with --smoke)


def models_dir() -> Path:
    "The saved models (trained once on the source's training cells, in memory)."
    out = WORK / "predict_models"
    if not all((out / m / "meta.json").exists() for m in MODELS):
        from scaml.models import CellTypeModel
        src = droplet_source()
        train = src[src.obs["split"] == "train"].copy()
        for m, kw in MODELS.items():
            CellTypeModel(m, **kw).fit(train, label_key="cell_type").save(out / m, overwrite=True)
    return out


def measure(cmd: list[str]) -> tuple[float, float, float]:
    "Wall seconds, peak RSS (MB, VmHWM) and CPU seconds (user + system) of a command in a fresh process."
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    peak = 0.0
    while proc.poll() is None:
        m = _rss_mb(proc.pid)
        if m is not None: peak = max(peak, m[1])
        time.sleep(0.5)
    wall = time.perf_counter() - t
    _, err = proc.communicate()
    if proc.returncode != 0: raise RuntimeError(err)
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, peak, ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime


def run(n: int, model: str, h5ad: bool, backed: str = "yes") -> dict:
    path = atlas(n)
    out = WORK / f"predict_{n}_{model}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "scaml_predict"), "--model", str(models_dir() / model), "--adata",
           str(path), "--out", str(out / "predictions.csv"), "--backed", backed, "--overwrite", "--quiet"]
    if h5ad: cmd += ["--h5ad-out", str(out / "annotated.h5ad")]
    load0 = os.getloadavg()[0]
    wall, peak, cpu = measure(cmd)
    kind = "backed" if backed == "yes" else "memory"
    rec = {"workload": f"predict_{kind}_tm_droplet_{n}" + ("_h5ad" if h5ad else ""), "n_cells": n, "models": [model],
           "backend": "local", "engine": f"predict --backed {backed}", "device": "cpu", "cpu": cpu_model(),
           "cpu_s": round(cpu, 1),
           "file_gb": round(path.stat().st_size / 1e9, 2), "wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1),
           "cells_per_s": round(n / wall, 1), "csv_gb": round((out / "predictions.csv").stat().st_size / 1e9, 3),
           "load_avg_1min": round(os.getloadavg()[0], 2), "load_avg_1min_start": round(load0, 2),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for f in out.iterdir(): f.unlink()
    out.rmdir()
    return rec


def main(argv=None) -> int:
    global WORK, MODELS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--keep", action="store_true", help="keep the generated atlas files")
    p.add_argument("--in-memory", action="store_true",
                   help="measure scaml_predict --backed no (the whole query in memory) instead, for comparison")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="results file to update (default benchmarks/results.json; a temporary file with --smoke)")
    p.add_argument("--no-h5ad", action="store_true", help="skip the --h5ad-out runs at the smallest size")
    p.add_argument("--smoke", action="store_true",
                   help="one 3,000-cell query, lr, in a temporary folder: checks that the script runs")
    a = p.parse_args(argv)
    results = a.out
    if a.smoke:
        from _smoke import smoke_out
        results = smoke_out(None if a.out == RESULTS else str(a.out), RESULTS.name)
        WORK = scale.WORK = results.parent / "out"
        MODELS, a.sizes, a.models = {"lr": {}}, [3000], ["lr"]
    res = json.loads(results.read_text()) if results.exists() else {"records": []}
    models_dir()
    if a.in_memory:
        for n in a.sizes:
            for m in a.models:
                r = run(n, m, False, backed="no")
                print(f"{r['workload']:36s} {m:7s} wall {r['wall_s']:7.1f}s rss {r['peak_rss_mb']:7.1f} MB", flush=True)
                res["records"] = [o for o in res["records"] if not same_run(o, r)] + [r]
                results.write_text(json.dumps(res, indent=1) + "\n")
            if not a.keep: atlas(n).unlink()
        return 0
    first: dict[str, dict] = {}
    for i, n in enumerate(sorted(a.sizes)):
        for m in a.models:
            for h5ad in ([False, True] if i == 0 and not a.no_h5ad else [False]):
                r = run(n, m, h5ad)
                if not h5ad:
                    first.setdefault(m, r)
                    r["peak_rss_growth"] = {"cells": round(n / first[m]["n_cells"], 1),
                                            "peak_rss": round(r["peak_rss_mb"] / first[m]["peak_rss_mb"], 3)}
                print(f"{r['workload']:36s} {m:7s} wall {r['wall_s']:7.1f}s rss {r['peak_rss_mb']:7.1f} MB "
                      f"{r['cells_per_s']:9.0f} cells/s", flush=True)
                res["records"] = [o for o in res["records"] if not same_run(o, r)] + [r]
                res["machine"] = machine()
                results.write_text(json.dumps(res, indent=1) + "\n")
        if not a.keep: atlas(n).unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
