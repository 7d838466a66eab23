"""`CellTypeModel` and `Preprocessor` under scikit-learn's estimator contract: `get_params` / `set_params` hold the
constructor arguments only, so `sklearn.base.clone` gives an unfitted copy with equal settings."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier

from scaml.models import MODELS, CellTypeModel
from scaml.preprocess import Preprocessor


def _same(a: dict, b: dict) -> bool:
    "Equal parameter dicts, preprocessors compared by their own parameters."
    norm = lambda d: {k: (v.get_params() if isinstance(v, Preprocessor) else v) for k, v in d.items()}  # noqa: E731
    return norm(a) == norm(b)

@pytest.mark.parametrize("name", [m for m in MODELS if m != "actinn_deepchem"])
def test_clone_unfitted_equal_params(name):
    m = CellTypeModel(name, preprocessor=Preprocessor(n_top_genes=300, scale=False), class_weight="balanced",
                      random_state=7)
    c = clone(m)
    assert c is not m and c.preprocessor is not m.preprocessor
    assert _same(c.get_params(deep=False), m.get_params(deep=False))
    assert c.get_params()["preprocessor__n_top_genes"] == 300 and c.classes_ == []

@pytest.fixture(scope="module")
def task(data_dir):
    from scaml.datasets import load_task
    a = load_task("tm_facs_to_droplet")
    return a[a.obs.split == "train"][::4].copy(), a[a.obs.split == "test"][::4].copy()

def test_clone_of_fitted_model_on_real_cells(task):
    train, test = task
    m = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=200), class_weight="balanced", C=0.3)
    m.fit(train, label_key="label")
    c = clone(m)
    assert c.classes_ == [] and c.preprocessor.features_ == [] and m.preprocessor.features_   # the original stays fitted
    assert _same(c.get_params(), m.get_params())
    c.fit(train, label_key="label")                       # same settings, same data: the same model
    np.testing.assert_array_equal(c.predict_proba(test).to_numpy(), m.predict_proba(test).to_numpy())

def test_set_params(task):
    train, test = task
    m = CellTypeModel("lr", preprocessor=Preprocessor(n_top_genes=200)).fit(train, label_key="label")
    assert m.set_params(C=0.01, preprocessor__n_top_genes=50) is m
    assert m.classes_ == [] and m.get_params()["C"] == 0.01            # rebuilt: unfitted until fitted again
    m.fit(train, label_key="label")
    assert len(m.preprocessor.features_) == 50
    assert m.set_params(model="rf").get_params(deep=False)["model"] == "rf" and "C" not in m.get_params()
    with pytest.raises(TypeError, match="unknown parameters"): CellTypeModel("lr").set_params(n_trees=3)
    with pytest.raises(ValueError, match="not Preprocessor parameters"):
        CellTypeModel("lr").set_params(preprocessor__n_genes=3)

def test_clone_wrapped_sklearn_classifier(task):
    train, test = task
    m = CellTypeModel(ExtraTreesClassifier(n_estimators=20), preprocessor=Preprocessor(n_top_genes=100))
    c = clone(m)
    assert c.get_params(deep=False)["model"] is not m.get_params(deep=False)["model"]
    assert c.get_params(deep=False)["model"].get_params() == m.get_params(deep=False)["model"].get_params()
    assert c.fit(train, label_key="label").predict(test).notna().all()
