"""calibrate='oob': a temperature on a random forest's out-of-bag training cells (no refit), on a real task."""
import warnings

import numpy as np
import pytest

import scaml
from scaml.benchmark import run_benchmark
from scaml.calibration import oob_calibration
from scaml.models import CellTypeModel


@pytest.fixture(scope="module")
def tm():
    return scaml.load_task("tm_droplet_to_facs")       # 10x droplet -> Smart-seq2: rf's ECE is 0.38 uncalibrated


def run(adata, calibrate, models=("lr", "rf"), **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_benchmark(adata, label_key="label", split_key="split", train="train", test="test",
                             models=list(models), progress=False, plots=False, calibrate=calibrate, n_threads=1, **kw)


@pytest.mark.slow
def test_oob_calibrates_rf_without_changing_predictions(tm, tmp_path):
    raw, oob = run(tm, None), run(tm, "oob", outdir=tmp_path / "run")
    assert raw.metrics["rf"]["ece"] > 0.2 and oob.metrics["rf"]["ece"] < 0.05          # the forest was under-confident
    assert oob.metrics["rf"]["ece_uncalibrated"] == pytest.approx(raw.metrics["rf"]["ece"])
    assert (oob.predictions["rf"]["y_pred"] == raw.predictions["rf"]["y_pred"]).all()  # a temperature keeps the argmax
    assert oob.metrics["rf"]["temperature"] < 1
    # lr has no out-of-bag cells: left exactly as it is, and said so in the manifest
    np.testing.assert_allclose(oob.proba["lr"], raw.proba["lr"])
    cal = oob.manifest["calibration"]
    assert cal["method"] == "oob" and set(cal["models"]) == {"rf"}
    assert "out-of-bag" in cal["models"]["rf"]["kind"] and "rf_calibration_s" in oob.manifest["timings"]
    # the saved model applies the same temperature
    m = CellTypeModel.load(tmp_path / "run" / "rf" / "model")
    P = m.predict_proba(tm[tm.obs.split == "test"])
    np.testing.assert_allclose(np.asarray(P), oob.proba["rf"], atol=1e-6)


def test_oob_calibration_only_for_bagged_forests():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)); y = (X[:, 0] > 0).astype(int)
    from scaml.preprocess import Preprocessor
    fitted = {n: CellTypeModel(n).fit_matrix(X, y, classes=["a", "b"], preprocessor=Preprocessor()) for n in ("rf", "lr")}
    info = oob_calibration(fitted["rf"], X, y)
    assert info["n_heldout"] > 250 and info["calibrator"].temperature_ > 0
    assert oob_calibration(fitted["lr"], X, y) is None


def test_bad_calibrate_value_names_oob():
    a = scaml.load_task("tm_droplet_to_facs")
    with pytest.raises(ValueError, match="'oob'"):
        run(a, "bagging")


def test_oob_keeps_the_automatic_out_of_core_engine(tmp_path, monkeypatch):
    # 'oob' costs nothing and no engine refuses it: above the threshold the run still moves out of core, where the
    # models train from blocks and are left as they are
    import anndata
    import scaml.engines
    path = tmp_path / "tm.h5ad"
    scaml.load_task("tm_droplet_to_facs").write_h5ad(path)
    monkeypatch.setattr(scaml.engines, "OUT_OF_CORE_CELLS", 500)
    backed = anndata.read_h5ad(path, backed="r")
    res = run(backed, "oob", models=("lr",))
    assert res.manifest["engine"] == "out-of-core"
    assert res.manifest["calibration"]["method"] == "oob" and not res.manifest["calibration"]["models"]
    backed.file.close()
