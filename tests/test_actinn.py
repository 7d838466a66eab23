"""ACTINN backends on the DeepChem tutorial split, through the installed package."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scaml.actinn import _import_deepchem, actinn_preprocessor
from scaml.datasets import load_task
from scaml.models import CellTypeModel

DATA = Path(os.environ.get("SCAML_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data").resolve()

@pytest.fixture(scope="module")
def split():
    task = load_task("actinn_tutorial", data_dir=DATA)
    return task[task.obs.split == "train"].copy(), task[task.obs.split == "test"].copy()

@pytest.fixture(scope="module")
def actinn_model(split):
    train, _ = split
    return CellTypeModel("actinn", preprocessor=actinn_preprocessor(), random_state=0).fit(train, label_key="label")

def _accuracy(model: CellTypeModel, adata) -> float:
    return float((model.predict(adata).to_numpy() == adata.obs["label"].to_numpy()).mean())

def test_actinn_accuracy(split, actinn_model):
    _, test = split
    assert actinn_model.backend.history_["n_val"] > 0
    assert _accuracy(actinn_model, test) >= 0.96

def test_actinn_save_load(split, actinn_model, tmp_path):
    _, test = split
    path = actinn_model.save(tmp_path / "actinn")
    assert (path / "state_dict.pt").exists()
    loaded = CellTypeModel.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), actinn_model.predict_proba(test).to_numpy())
    assert loaded.classes_ == actinn_model.classes_

def test_actinn_shared_preprocessing(split):
    """The benchmark's default preprocessing (HVG, scaled log1p) works as well."""
    train, test = split
    model = CellTypeModel("actinn", random_state=0).fit(train, label_key="label")
    assert _accuracy(model, test) >= 0.96

def test_actinn_deepchem_accuracy(split, tmp_path):
    try:
        _import_deepchem()
    except ImportError as e:
        if os.environ.get("SCAML_SKIP_DEEPCHEM") == "1":
            pytest.skip(f"deepchem cannot be imported and SCAML_SKIP_DEEPCHEM=1 ({e})")
        pytest.fail(f"{e}; or set SCAML_SKIP_DEEPCHEM=1 to skip this test")
    train, test = split
    model = CellTypeModel("actinn_deepchem", preprocessor=actinn_preprocessor(), random_state=0)
    model.fit(train, label_key="label")
    assert _accuracy(model, test) >= 0.96
    loaded = CellTypeModel.load(model.save(tmp_path / "dc"))
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), model.predict_proba(test).to_numpy())
