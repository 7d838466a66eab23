"""Reading and transforming blocks of a backed atlas, before and after a change, alternating in one process.

The out-of-core engine's passes are reads of blocks plus their transform; this times exactly that, without the models
(whose time the whole-run pairs of scale.py mix in), on the atlas `scale.py` builds:

    git archive REV scaml | tar -x -C /tmp/x && mv /tmp/x/scaml /tmp/sb/scaml_before
    python benchmarks/blocks_ab.py 1000000 --before /tmp/sb
    python benchmarks/blocks_ab.py --smoke --out /tmp/r.json   # 2,000 cells, this code against itself: that it runs

Each round times `n_blocks` training blocks (`FileBlocks[i]`, shuffled chunks) and one sequential pass over the test
cells (`predict_from_blocks` with a stand-in model: one product per block) for the earlier code, then this code with
one thread and with two; the blocks must be identical bit for bit. Medians go to benchmarks/results.json.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scale  # noqa: E402
from run import RESULTS, cpu_model  # noqa: E402


def stand_in(n_features: int, n_classes: int = 5) -> SimpleNamespace:
    "A model for predict_from_blocks: one sparse product per block, like lr's."
    W = np.random.default_rng(0).standard_normal((n_features, n_classes))
    return SimpleNamespace(classes_=list(range(n_classes)), backend=SimpleNamespace(predict_proba=lambda X: X @ W))

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int, nargs="?", help="cells of the atlas (built by scale.py's atlas if missing)")
    p.add_argument("--before", help="folder holding the earlier code as package scaml_before")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n-blocks", type=int, default=6)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--out", help="results file (default benchmarks/results.json; a temporary file with --smoke)")
    p.add_argument("--smoke", action="store_true", help="2,000 cells, one round, this code as its own 'before'")
    a = p.parse_args(argv)
    bs = 50_000
    if a.smoke:
        from _smoke import smoke_out
        a.out = smoke_out(a.out, RESULTS.name)
        scale.WORK, a.n, a.rounds, a.n_blocks, bs = a.out.parent / "out", 2000, 1, 1, 500
        import scaml
        sys.modules["scaml_before"] = scaml
    elif a.n is None or a.before is None:
        p.error("give the number of cells and --before (or --smoke)")
    else:
        sys.path.insert(0, a.before)
    import anndata
    from scaml.outofcore import FileBlocks, predict_from_blocks
    from scaml.preprocess import Preprocessor
    from scaml.streaming import fit_preprocessor_streaming, read_obs_codes
    old = importlib.import_module("scaml_before.outofcore")
    old_pp_cls = importlib.import_module("scaml_before.preprocess").Preprocessor
    path = scale.atlas(a.n)
    codes, cats = read_obs_codes(path, "split")
    tr, te = np.flatnonzero(cats[codes] == "train"), np.flatnonzero(cats[codes] == "test")
    ad = anndata.read_h5ad(path, backed="r")
    pp = fit_preprocessor_streaming(ad, Preprocessor(n_top_genes=2000), rows=tr[:200_000])
    pp_old = old_pp_cls.from_dict(json.loads(json.dumps(pp.to_dict())))
    variants = {"before": lambda rows, **kw: old.FileBlocks(ad, pp_old, rows, **kw),
                "after_1_thread": lambda rows, **kw: FileBlocks(ad, pp, rows, threads=1, **kw),
                "after_2_threads": lambda rows, **kw: FileBlocks(ad, pp, rows, threads=2, **kw)}
    predict = {"before": old.predict_from_blocks, "after_1_thread": predict_from_blocks,
               "after_2_threads": predict_from_blocks}
    times = {v: {"train_block_s": [], "test_pass_s": []} for v in variants}
    model = {"m": stand_in(len(pp.features))}
    ref = None
    for r in range(a.rounds):
        for v, make in variants.items():
            b = make(tr, chunk=bs // 16)
            t = time.perf_counter()
            got = [b[i] for i in range(r * a.n_blocks, (r + 1) * a.n_blocks)]
            times[v]["train_block_s"].append((time.perf_counter() - t) / a.n_blocks)
            if r == 0:
                if ref is None: ref = got
                assert all((x != y).nnz == 0 and np.array_equal(x.indices, y.indices) for x, y in zip(ref, got)), v
            tb = make(te[:200_000], chunk=bs, chunks_per_block=1, shuffle=False)
            t = time.perf_counter()
            predict[v](model, tb)
            times[v]["test_pass_s"].append(time.perf_counter() - t)
        print(r, round(os.getloadavg()[0], 1), {v: {k: round(x[-1], 3) for k, x in t_.items()} for v, t_ in times.items()},
              flush=True)
    med = {v: {k: round(float(np.median(x)), 3) for k, x in t_.items()} for v, t_ in times.items()}
    rec = {"workload": f"tm_droplet_resampled_{a.n}_blocks_ab", "n_cells": a.n, "cpu": cpu_model(),
           "what": f"{a.n_blocks} training blocks of {bs:,} cells (16 shuffled chunks) read and transformed, and one "
                   "pass over 200,000 test cells with a one-product stand-in model; medians of "
                   f"{a.rounds} alternating rounds", "median_s": med, "all_s": times,
           "after_over_before": {v: {k: round(med[v][k] / med["before"][k], 2) for k in med[v]} for v in med},
           "identical_blocks": True, "load_avg_1min": round(os.getloadavg()[0], 2),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(a.out) if a.out else RESULTS
    res = json.loads(out.read_text()) if out.exists() else {"records": []}
    res["records"] = [o for o in res["records"] if o["workload"] != rec["workload"]] + [rec]
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(rec["after_over_before"]))
    ad.file.close()
    if not a.keep and not a.smoke: path.unlink()
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
