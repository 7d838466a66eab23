"""scaml_report's own packages (papermill, nbconvert, ipykernel; the extra `scaml[report]`): a missing one is named,
with the install command, before anything is written."""
from __future__ import annotations

import importlib.util

import pytest

from scaml.report import run_report


@pytest.mark.parametrize("missing", ["nbconvert", "papermill"])
def test_missing_report_package_is_named_before_writing(missing, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == missing else real(name, *a, **k))
    with pytest.raises(ImportError, match=rf'needs {missing}, not installed here: pip install "scaml\[report\]"'):
        run_report(dataset="tm_facs_to_droplet", outdir=tmp_path / "report")
    assert not (tmp_path / "report").exists()
