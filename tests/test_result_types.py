"""Every result type writes itself and reads back as itself; every manifest is assembled by `ResultsFolder.new_manifest`."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaml.data import toy_adata

PKG = Path(__file__).resolve().parents[1] / "scaml"


@pytest.fixture(scope="module")
def toy():
    return toy_adata(n_obs=600, n_vars=200, n_classes=4, n_batches=4)


@pytest.fixture(scope="module")
def bench(toy, tmp_path_factory):
    from scaml.benchmark import run_benchmark
    out = tmp_path_factory.mktemp("bench") / "run"
    res = run_benchmark(toy, split_key="batch", train=["b0", "b1"], test=["b2", "b3"], models=["lr", "rf"],
                        n_top_genes=50, progress=False, outdir=out, plots=False,
                        model_params={"rf": {"n_estimators": 20}})
    return res, out


def test_read_results_returns_the_result_that_was_written(bench):
    from scaml.results import BenchmarkResult, read_results
    res, out = bench
    back = read_results(out)
    assert isinstance(back, BenchmarkResult) and back.outdir == out
    assert back.classes == res.classes and back.features == res.features
    assert list(back.models) == list(res.models) == list(back.summary.index)
    for m in res.models:
        np.testing.assert_allclose(back.proba[m].to_numpy(), res.proba[m].to_numpy(), atol=1e-5)
        assert list(back.proba[m].columns) == res.classes
        assert (back.predictions[m]["y_pred"].astype(str).to_numpy() == res.predictions[m]["y_pred"].astype(str).to_numpy()).all()
        assert back.metrics[m]["accuracy"] == pytest.approx(res.metrics[m]["accuracy"])
    assert back.y_true.tolist() == res.y_true.tolist()
    assert back.train_classes == res.train_classes == sorted(res.manifest["train_class_counts"])
    assert list(back.manifest) == list(json.loads((out / "manifest.json").read_text()))
    assert back.models["lr"].classes_ == res.models["lr"].classes_        # the saved model, loaded when asked for


def test_a_result_read_back_writes_the_same_folder(bench, tmp_path):
    from scaml.results import read_results
    _, out = bench
    again = read_results(out).write(tmp_path / "again", plots=False)
    for f in ["summary_metrics.json", "classes.txt", "features.txt", "lr/proba.csv", "lr/predictions.csv",
              "rf/confusion_matrix.csv", "lr/per_class.csv", "lr/classification_report.txt"]:
        assert (again / f).read_bytes() == (out / f).read_bytes(), f


def test_dict_access_still_works_with_a_deprecation_warning(bench):
    from scaml.results import read_results
    r = read_results(bench[1], ["lr"])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert r["classes"] == r.classes and set(r["proba"]) == {"lr"}
        assert r["y_true"].equals(r.y_true) and r["train_classes"] == r.train_classes
    assert [x.category for x in w] == [DeprecationWarning] * 4
    assert "use res.proba" in str(w[1].message)
    with pytest.raises(KeyError, match="res.summary"): r["summary"]


def test_saved_models_that_are_missing_are_named(bench, tmp_path):
    import shutil

    from scaml.results import read_results
    folder = tmp_path / "copy"
    shutil.copytree(bench[1], folder)
    shutil.rmtree(folder / "rf" / "model")
    r = read_results(folder)
    with pytest.raises(FileNotFoundError, match="holds no saved model"): r.models["rf"]
    with pytest.raises(KeyError, match="was not read"): r.models["svm"]


def test_benchmark_manifest_keeps_its_keys_in_order(bench):
    man = json.loads((bench[1] / "manifest.json").read_text())
    keys = list(man)
    assert keys[:3] == ["scaml_version", "args", "random_state"]
    assert keys[-8:] == ["versions", "platform", "n_threads", "n_cpus", "cpu_count", "timings", "best_model_f1_macro",
                         "files"]
    assert {"write_s", "total_s", "preprocess_s"} <= set(man["timings"])


def test_each_result_type_writes_itself(toy, tmp_path):
    from scaml.learning_curves import run_learning_curve
    from scaml.matrix import run_matrix
    from scaml.novelty import run_novelty
    from scaml.rejection import run_rejection
    ad = toy.copy()
    ad.obs["novel"] = (ad.obs.cell_type == "D").to_numpy()
    lc = run_learning_curve(ad, group_key="batch", test_groups=["b3"], n_groups=[1], fractions=[0.5], n_repeats=1,
                            n_top_genes=50, progress=False)
    mx = run_matrix(toy, split_key="batch", groups=["b0", "b1"], models=["lr"], cv_folds=0, loo=False, n_top_genes=50,
                    progress=False)
    nov = run_novelty(ad, flag_key="novel", method="lof", group_key="batch", test_groups=["b3"], n_top_genes=50)
    rej = run_rejection(ad, flag_key="novel", label_key="cell_type", group_key="batch", test_groups=["b3"],
                        n_top_genes=50)
    files = {}
    for name, res, kw in [("lc", lc, {}), ("matrix", mx, {"plots": False}), ("rejection", rej, {"plots": False})]:
        assert res.write(tmp_path / name, **kw) == tmp_path / name and res.outdir == tmp_path / name
        files[name] = sorted(p.name for p in (tmp_path / name).iterdir())
    nov.write(tmp_path / "nov", plots=False, also=[rej])
    files["nov"] = sorted(str(p.relative_to(tmp_path / "nov")) for p in (tmp_path / "nov").rglob("*") if p.is_file())
    assert files == {"lc": ["learning_curve.csv", "learning_curve.png", "learning_curve_summary.csv", "manifest.json"],
                     "matrix": ["gap.csv", "gap.json", "manifest.json", "matrix.csv"],
                     "rejection": ["curve.csv", "manifest.json", "metrics.json", "predictions.csv"],
                     "nov": ["manifest.json", "metrics.json", "rejection/curve.csv", "rejection/metrics.json",
                             "rejection/predictions.csv", "scores.csv"]}
    for name in files:
        man = json.loads((tmp_path / name / "manifest.json").read_text())
        assert list(man)[:2] == ["scaml_version", "args"] and list(man)[-1] == "files", name
    lcm = json.loads((tmp_path / "lc" / "manifest.json").read_text())
    assert list(lcm) == ["scaml_version", "args", "n_cells", "test_groups", "train_groups", "versions", "timings", "files"]
    assert lcm["test_groups"] == ["b3"]
    got = pd.read_csv(tmp_path / "lc" / "learning_curve.csv")
    assert len(got) == len(lc.curve) and (got.model == "lr").all()


def test_no_module_assembles_a_manifest_header_by_hand():
    """Only `ResultsFolder.new_manifest` writes the version key of a results manifest (a saved model's `meta.json` and an
    annotated file's `uns` record it in their own formats: modelfile.py, models.py, predict_stream.py)."""
    hits = []
    for f in sorted(PKG.glob("*.py")):
        if f.name.startswith("_") or f.name in ("modelfile.py", "models.py", "predict_stream.py"): continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"""["']scaml_version["']\s*:""", line): hits.append(f"{f.name}:{i}")
    assert len(hits) == 1 and hits[0].startswith("results.py:"), hits      # new_manifest itself
