"""The validation panel: the leave-one-family-out rule on small tables, and `benchmarks/panel.py --quick` end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from panel import lofo_rule  # noqa: E402

def table(rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, index=["fam_a", "fam_b", "fam_c"]).T

def test_rule_adopts_a_candidate_that_gains_everywhere():
    t = table({"default": [0.90, 0.80, 0.70], "better": [0.92, 0.82, 0.72], "worse": [0.85, 0.75, 0.65]})
    r = lofo_rule(t, "default")
    assert r["adopt"] and r["winner"] == "better"
    assert all(f["chosen"] == "better" for f in r["folds"].values())
    assert abs(r["mean_gain"] - 0.02) < 1e-9 and abs(r["min_gain"] - 0.02) < 1e-9
    assert set(r["candidates"]) == {"default", "better", "worse"}      # losers are recorded too

def test_rule_refuses_a_candidate_that_loses_on_one_family():
    # large gains on two families, but 0.05 lost on the third: mean gain positive, still refused
    t = table({"default": [0.90, 0.80, 0.70], "tuned": [0.99, 0.95, 0.65]})
    r = lofo_rule(t, "default")
    assert r["mean_gain"] > 0 and not r["adopt"]
    assert r["folds"]["fam_c"]["chosen"] == "tuned" and r["folds"]["fam_c"]["gain"] == pytest.approx(-0.05)
    assert "loses" in r["reason"]

def test_rule_allows_a_loss_within_tolerance():
    t = table({"default": [0.90, 0.80, 0.70], "cand": [0.95, 0.85, 0.695]})
    assert lofo_rule(t, "default")["adopt"]
    assert not lofo_rule(t, "default", tol=0.001)["adopt"]

def test_rule_chooses_without_the_held_out_family():
    # 'spiky' is best on fam_a only; 'steady' best on the others. Holding out fam_a, the choice on b and c is
    # 'steady', which is scored on fam_a: the rule never sees fam_a when choosing for it
    t = table({"default": [0.80, 0.80, 0.80], "spiky": [0.95, 0.60, 0.60], "steady": [0.79, 0.85, 0.85]})
    r = lofo_rule(t, "default")
    assert r["folds"]["fam_a"]["chosen"] == "steady"
    assert r["folds"]["fam_a"]["gain"] == pytest.approx(-0.01)
    assert r["adopt"] and r["winner"] == "steady"

def test_rule_with_a_default_set():
    # the default set is represented on each held-out family by its member with the best mean elsewhere
    t = table({"m1": [0.9, 0.9, 0.5], "m2": [0.5, 0.5, 0.9], "new": [0.91, 0.91, 0.91]})
    r = lofo_rule(t, ["m1", "m2"])
    assert r["folds"]["fam_c"]["default"] == "m1" and r["folds"]["fam_a"]["default"] == "m1"
    assert r["adopt"]
    assert not lofo_rule(table({"m1": [0.9, 0.9, 0.9], "m2": [0.5, 0.5, 0.5]}), ["m1", "m2"])["adopt"]

def test_rule_with_a_candidate_set():
    # only the candidate set's members may be chosen: 'other' is best everywhere but not in the set; the set is
    # represented on each held-out family by its member with the best mean on the others
    t = table({"m1": [0.9, 0.9, 0.8], "c1": [0.95, 0.5, 0.9], "c2": [0.5, 0.9, 0.6], "other": [1.0, 1.0, 1.0]})
    r = lofo_rule(t, ["m1"], candidates=["c1", "c2"])
    assert r["winner"] in ("c1", "c2")
    assert r["folds"]["fam_c"]["chosen"] == "c1" and r["folds"]["fam_c"]["gain"] == pytest.approx(0.1)
    assert r["folds"]["fam_a"]["chosen"] == "c2" and r["folds"]["fam_a"]["gain"] == pytest.approx(-0.4)
    assert not r["adopt"] and r["mean_gain"] == pytest.approx((0.1 - 0.4 - 0.4) / 3)
    assert lofo_rule(t, ["m1"])["winner"] == "other"
    # the default set plus one model: where the default's own member is chosen on the others, the gain is 0
    r = lofo_rule(t.loc[["m1", "c1"]], ["m1"], candidates=["m1", "c1"])
    assert r["folds"]["fam_a"]["chosen"] == "m1" and r["folds"]["fam_a"]["gain"] == 0
    assert r["folds"]["fam_b"]["chosen"] == "c1" and r["folds"]["fam_b"]["gain"] == pytest.approx(-0.4)
    with pytest.raises(KeyError, match="nope"): lofo_rule(t, ["m1"], candidates=["nope"])

def test_rule_bad_input():
    with pytest.raises(KeyError, match="nope"): lofo_rule(table({"a": [1, 1, 1]}), "nope")
    with pytest.raises(ValueError, match="two families"): lofo_rule(pd.DataFrame({"f": [1.0]}, index=["a"]), "a")

@pytest.mark.slow
def test_panel_quick(tmp_path):
    data = os.environ.get("SCAML_DATA_DIR")
    if not data or not Path(data, "cellbench_lung_celllines").exists(): pytest.skip("SCAML_DATA_DIR with the shared data")
    out = tmp_path / "panel.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "panel.py"), "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["protocol"]["quick"] is True
    (name, task), = d["tasks"].items()
    assert task["family"] == "cellbench" and task["n_train"] > 0 and task["n_test"] > 0
    lr = task["classifiers"]["default"]["models"]["lr"]
    assert 0 <= lr["f1_lo"] <= lr["f1_macro"] <= lr["f1_hi"] <= 1 and lr["seconds"] > 0
    for c in ("combined", "knn@matched"):
        nov = task["novelty"][c]
        assert set(nov["per_type"]) == {"H1975", "H2228", "HCC827"}
        assert all(0 <= v <= 1 for v in nov["per_type"].values())
        assert nov["min"] <= nov["mean"] and nov["mean_lo"] <= nov["mean_hi"]
    assert d["decisions"] == {}                          # one family: the rule needs two, and says nothing
    # an existing file is never replaced silently
    r2 = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "panel.py"), "--quick", "--out", str(out)],
                        capture_output=True, text=True, env=env, timeout=900)
    assert r2.returncode == 2 and "exists" in r2.stderr

def test_corr_gap_score_ranks_a_new_type_higher():
    # three types, each high on its own 20 of 60 genes; fitted on two, the third has no clear best profile
    import numpy as np
    from panel import CorrGapScore, _auroc
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    X = rng.poisson(1.0, (300, 60)).astype(float)
    for t in range(3): X[y == t, 20 * t:20 * (t + 1)] += rng.poisson(4.0, (100, 20))
    X = np.log1p(X)
    s = CorrGapScore().fit(X[y < 2], y[y < 2]).score(X)
    assert s.shape == (300,) and np.isfinite(s).all()
    assert _auroc(y == 2, s) > 0.95
    assert (s <= 0).all()                    # minus a gap between correlations

@pytest.mark.slow
def test_panel_configs_merge(tmp_path):
    # --configs runs only the configurations named; --merge keeps the others recorded before
    data = os.environ.get("SCAML_DATA_DIR")
    if not data or not Path(data, "cellbench_lung_celllines").exists(): pytest.skip("SCAML_DATA_DIR with the shared data")
    out = tmp_path / "panel.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "panel.py"), "--part", "classifiers",
                               "--tasks", "cellbench_celseq2_to_dropseq", "--out", str(out), *args],
                              capture_output=True, text=True, env=env, timeout=900)
    r = run("--configs", "knn")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("--configs", "singler", "--merge")
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert set(d["tasks"]["cellbench_celseq2_to_dropseq"]["classifiers"]) == {"knn", "singler"}
    assert set(d["protocol"]["classifier_configs"]) == {"knn", "singler"}
    r = run("--configs", "nope", "--merge")
    assert r.returncode == 2 and "unknown configurations ['nope']" in r.stderr

def test_class_quantiles_scale_each_cell_by_its_assigned_type():
    import numpy as np
    from panel import class_quantiles
    # type 0's reference scores are low (0..0.99), type 1's high (10..10.99); type 2 has too few cells: pooled
    ref = {"s": np.r_[np.arange(100) / 100, 10 + np.arange(100) / 100, [5.0]]}
    ref_cls = np.r_[np.zeros(100), np.ones(100), [2]].astype(int)
    q = class_quantiles(ref, ref_cls, {"s": np.array([0.5, 0.5, 10.5, 0.5])}, np.array([0, 1, 1, 2]))["s"]
    assert abs(q[0] - 0.5) < 0.01                     # the middle of its own type
    assert q[1] < 0.01 and abs(q[2] - 0.5) < 0.01     # a low score for type 1: usual only for type 0
    assert abs(q[3] - 50.5 / 201) < 0.01              # type 2 (one reference cell): the pooled reference
    q2 = class_quantiles(ref, ref_cls, {"s": np.array([1.99])}, np.array([0]))["s"]
    assert q2[0] > 1                                  # beyond the type's largest value: ordered past 1


def test_time_pairs_alternates_and_reports_ratios(monkeypatch):
    import panel
    calls = []
    def fake(adata, cfg, n_boot=200):
        (c,) = cfg; calls.append(c)
        return {c: {"wall_s": 2.0 if c == "b" else 1.0}}
    monkeypatch.setattr(panel, "run_classifiers", fake)
    monkeypatch.setitem(panel.CLASSIFIER_CONFIGS, "a", {}); monkeypatch.setitem(panel.CLASSIFIER_CONFIGS, "b", {})
    r = panel.time_pairs({"t": {"adata": None}}, "a", "b", repeats=2)
    assert calls == ["a", "b", "a", "b"]
    assert r["tasks"]["t"]["median_ratio"] == 2.0 and r["median_ratio"]["max"] == 2.0

def test_the_panels_default_novelty_score_is_the_librarys():
    "The score the panel adopted (decisions['novelty']) is the one scaml uses by default: TypeNoveltyScorer()."
    import panel
    from scaml.novelty import _resolve_method
    from scaml.ood import TypeNoveltyScorer
    cfg, s = panel.NOVELTY_CONFIGS[panel.NOVELTY_DEFAULT], TypeNoveltyScorer()
    assert (tuple(cfg["components"]), cfg["shift"], cfg["smooth"], cfg["per_class"]) == (s.components, s.shift, s.smooth, True)
    assert _resolve_method("auto", None, "cell_type") == "typed"
    recorded = json.loads((ROOT / "benchmarks" / "panel.json").read_text())
    d = recorded["decisions"]["novelty"]
    assert d["adopt"] and d["winner"] == panel.NOVELTY_DEFAULT, d["reason"]
