"""Shared fixtures: the real datasets (SCAML_DATA_DIR, else the cache: linked from ../shared/data or downloaded), and a
runner for the installed console scripts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"   # ../shared/data beside the clone, where there is one
# the original SCAML's results-layout checker: an external file beside the clone (../shared/compat), not in the repository
SEED_CHECK = Path(__file__).resolve().parents[2] / "shared" / "compat" / "check_seed_layout.py"
BIN = Path(sys.executable).parent


def _data_folder() -> Path:
    """The folder with the registered datasets: `SCAML_DATA_DIR` when set; else the download cache, filled from
    ../shared/data beside the clone (linked) where it is there, else downloaded (from `SCAML_DATA_URL` when set)."""
    if os.environ.get("SCAML_DATA_DIR"):
        return Path(os.environ["SCAML_DATA_DIR"]).resolve()
    from scaml.datasets import DATASETS, cache_dir, fetch_dataset
    for name in DATASETS:
        fetch_dataset(name, data_dir=SHARED if SHARED.is_dir() else None)
    return cache_dir().resolve()


DATA = _data_folder()
# test modules and the console scripts they run read SCAML_DATA_DIR: point it at the folder found above
os.environ["SCAML_DATA_DIR"] = str(DATA)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert (DATA / "deepchem_actinn_tm_facs").is_dir(), f"the registered datasets are not in {DATA}"
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


class SeedCheckNotRun(UserWarning):
    "The original SCAML's layout check was skipped because its external checker is not beside this clone."


@pytest.fixture
def seed_layout():
    """Run the original SCAML's layout checker (../shared/compat/check_seed_layout.py) on a results folder: returns the
    CompletedProcess (exit 0 = readable by the original tools), or None with a `SeedCheckNotRun` warning where the
    checker is absent (a clone alone): only that check is skipped, the test's other assertions still run."""
    def run(folder: Path) -> subprocess.CompletedProcess | None:
        if not SEED_CHECK.exists():
            import warnings
            warnings.warn(SeedCheckNotRun(f"the original SCAML's layout check was not run on {Path(folder).name}: its "
                                          f"external checker {SEED_CHECK} is not beside this clone"), stacklevel=2)
            return None
        return subprocess.run([sys.executable, str(SEED_CHECK), str(folder)], capture_output=True, text=True)
    return run


def assert_error(code: int, err: str, *phrases: str) -> str:
    """A console script's clean failure: exit 1, exactly one `error:` line holding every phrase, a `hint:` line, no
    traceback; returns the error line. Import it in a test module with `from conftest import assert_error`."""
    assert code == 1, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert "hint: " in err and "Traceback" not in err, err
    for p in phrases: assert p in errors[0], (p, errors[0])
    return errors[0]
