"""Every script in benchmarks/ still imports and runs: `--help` for each (fast), and a `--smoke` run of each on a few
hundred real cells (slow), writing to a temporary file; the committed records in benchmarks/ are never touched."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ["actinn", "analysis", "busy", "headline", "novelty", "panel", "predict_scale", "quality", "run", "scale",
           "scanvi", "travel", "celltypist_ratio", "blocks_ab"]
OUT_FLAG = {"run": "--output"}

def _records() -> dict[str, str]:
    "Checksums of the committed benchmark records."
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(BENCH.glob("*.json"))}

def _run(args: list[str], tmp_path: Path, data_dir: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp_path),
           "SCAML_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=tmp_path)

def test_every_script_is_listed():
    found = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")}
    assert found == set(SCRIPTS), "add a new benchmark script to SCRIPTS, with a --smoke option"

@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports(name, tmp_path, data_dir):
    p = _run([str(BENCH / f"{name}.py"), "--help"], tmp_path, data_dir, 120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "--smoke" in p.stdout

@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_smoke_run(name, tmp_path, data_dir):
    before = _records()
    out = tmp_path / "res" / f"{name}.json"
    args = [str(BENCH / f"{name}.py"), "--smoke", OUT_FLAG.get(name, "--out"), str(out)]
    if name == "analysis": args.append(str(tmp_path / "folders"))
    p = _run(args, tmp_path, data_dir, 600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(out.read_text())                  # the record went where it was told to go
    assert _records() == before, "a smoke run changed a committed benchmark record"
