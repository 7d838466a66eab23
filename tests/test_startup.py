"""Small runs start fast: `import scaml` and `scaml_train --help` load none of the heavy libraries."""
from __future__ import annotations

import json
import subprocess
import sys
import time

HEAVY = ("numpy", "scipy", "pandas", "anndata", "scanpy", "sklearn", "xgboost", "torch", "matplotlib", "dask",
         "distributed", "threadpoolctl")

def _loaded(code: str) -> list[str]:
    "The heavy top-level packages loaded after running `code` in a fresh interpreter."
    probe = code + f"\nimport sys, json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])

def test_import_scaml_is_light():
    assert _loaded("import scaml") == []

def test_help_is_light_and_fast():
    code = ("import contextlib, io\nfrom scaml.cli import scaml_train\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: scaml_train(['--help'])\n    except SystemExit: pass")
    assert _loaded(code) == []
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "scaml.cli", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "--n-threads" in p.stdout
    assert time.perf_counter() - t < 3      # about 0.2 s on a quiet machine; generous for a busy one

def test_core_thread_helpers_are_light():
    assert _loaded("from scaml.core import available_cpus, n_threads; available_cpus(); n_threads()") == []
