"""Tiny inputs for the `--smoke` runs of the benchmark scripts: each script runs end to end in seconds on a few hundred
real cells, so that the test command (tests/test_benchmarks_smoke.py) notices when one no longer imports or runs.
A smoke run's numbers mean nothing; it writes them where `--out` says (a temporary file by default), never over
the committed records."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def tiny(adata, n: int, key: str, *, per_value: int = 3, random_state: int = 0):
    """About `n` cells of `adata` drawn at random, at least `per_value` (where it has them) of each value of
    `obs[key]`, in their original order, as a copy."""
    rng = np.random.default_rng(random_state)
    vals = adata.obs[key].astype(str).to_numpy()
    keep = set(rng.choice(adata.n_obs, size=min(n, adata.n_obs), replace=False).tolist())
    for v in np.unique(vals):
        idx = np.flatnonzero(vals == v)
        keep.update(rng.choice(idx, size=min(per_value, len(idx)), replace=False).tolist())
    return adata[np.sort(np.fromiter(keep, int))].copy()


def smoke_out(out: str | None, name: str) -> Path:
    "Where a smoke run writes: `out` when given, else a new temporary file (never the committed record)."
    path = Path(out) if out else Path(tempfile.mkdtemp(prefix="scaml_smoke_")) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


TASK_ARGS = ["--label-key", "label", "--split-key", "split", "--split-train", "train", "--split-test", "test"]


def tiny_task_file(folder: Path, name: str = "tm_facs_to_droplet", n: int = 300) -> Path:
    "A few hundred cells of a real cross-batch task written to `folder` as .h5ad (obs 'label' and 'split')."
    from scaml.datasets import load_task
    path = Path(folder) / f"{name}_smoke.h5ad"
    if not path.exists(): tiny(load_task(name), n, "label", per_value=10).write_h5ad(path)
    return path
