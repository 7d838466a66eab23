"""Shared fixtures: the real datasets next to the repository, and a runner for the installed console scripts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(os.environ.get("SCAML_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data").resolve()
BIN = Path(sys.executable).parent

@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert (DATA / "deepchem_actinn_tm_facs").is_dir(), f"real datasets not found in {DATA}; set SCAML_DATA_DIR"
    return DATA

@pytest.fixture
def cli(data_dir):
    "Run an installed console script; returns the CompletedProcess."
    def run(name: str, *args, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
        p = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{name} {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p
    return run
