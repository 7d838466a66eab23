"""The analysis tools on real data: the cross-batch matrix on CellBench, bootstrap intervals and paired comparisons
on the Tabula Muris FACS -> droplet task, and the top genes of models fitted on the Tabula Muris droplet data."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

B_MARKERS = ["Cd79a", "Cd79b", "Cd19", "Ms4a1"]
T_MARKERS = ["Cd3e", "Cd3d", "Cd3g"]

# ---------------------------------------------------------------- cross-batch matrix

@pytest.fixture(scope="module")
def cellbench_matrix(tmp_path_factory, data_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path
    out = tmp_path_factory.mktemp("matrix") / "cellbench"
    env = {**os.environ, "SCAML_DATA_DIR": str(data_dir), "MPLBACKEND": "Agg"}
    exe = str(Path(sys.executable).parent / "scaml_matrix")
    p = subprocess.run([exe, "--dataset", "cellbench_plate_based", "--label-key", "cell_line", "--split-key", "batch",
            "--filter", "demuxlet_cls=SNG", "--models", "lr", "mlp", "--n-hvg", "500", "--cv-folds", "2",
            "--outdir", str(out), "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    return out, p

def test_matrix_csv_shape_and_rows(cellbench_matrix):
    out, p = cellbench_matrix
    m = pd.read_csv(out / "matrix.csv")
    groups = ["sc_celseq2", "sc_celseq2_5cl_p1", "sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3", "sc_dropseq"]
    assert sorted(m.test.unique()) == groups
    counts = m.groupby(["kind", "model"]).size().unstack()
    assert counts.loc["single"].tolist() == [20, 20]          # 5 x 4 ordered pairs per model
    assert counts.loc["loo"].tolist() == [5, 5]
    assert counts.loc["within_cv"].tolist() == [5, 5]
    loo = m[(m.kind == "loo") & (m.model == "lr")].set_index("test")
    assert loo.loc["sc_dropseq", "train"] == "all but sc_dropseq"
    assert set(loo.loc["sc_dropseq", "train_groups"].split(";")) == set(groups) - {"sc_dropseq"}
    # singlets only: the test cells of one group add up to its singlet count
    assert m[(m.kind == "loo") & (m.model == "lr")].n_test.sum() == 1021
    # 3-line experiment -> 5-line plate: A549 and H838 are unseen, f1_macro_seen scores the lines the model knows
    r = m[(m.train == "sc_celseq2") & (m.test == "sc_celseq2_5cl_p3") & (m.model == "lr")].iloc[0]
    assert r.n_test_unseen == 101 + 64
    assert r.f1_macro_seen > r.f1_macro
    # the LOO model trained on both 3-line and 5-line data knows all five lines
    assert loo.loc["sc_celseq2_5cl_p3", "n_test_unseen"] == 0
    assert loo.loc["sc_celseq2_5cl_p3", "f1_macro"] > 0.9

def test_matrix_heatmaps_gap_and_manifest(cellbench_matrix):
    out, p = cellbench_matrix
    for f in ["heatmap_lr.png", "heatmap_mlp.png"]:
        b = (out / f).read_bytes()
        assert b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 10_000
    gap = pd.read_csv(out / "gap.csv")
    assert len(gap) == 10 and gap[["within_group", "cross_group", "gap"]].notna().all().all()
    summ = json.loads((out / "gap.json").read_text())
    assert summ["metric"] == "f1_macro_seen" and set(summ["models"]) == {"lr", "mlp"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["cells_per_group"]["sc_celseq2_5cl_p3"] == 252 and "matrix.csv" in man["files"]
    assert "lr" in p.stdout and "within_group" in p.stdout
    assert not list(out.parent.glob(".*partial*"))

def test_matrix_cli_errors(cli, tmp_path):
    p = cli("scaml_matrix", "--dataset", "cellbench_plate_based", "--label-key", "cell_line",
            "--filter", "demuxlet_cls=XX", "--outdir", tmp_path / "x", check=False)
    assert p.returncode == 1 and "SNG" in p.stderr                # the error lists the values that exist
    (tmp_path / "exists").mkdir()
    p = cli("scaml_matrix", "--dataset", "cellbench_plate_based", "--outdir", tmp_path / "exists", check=False)
    assert p.returncode == 1 and "--overwrite" in p.stderr

# ---------------------------------------------------------------- intervals and comparisons

@pytest.fixture(scope="module")
def facs_to_droplet(data_dir):
    import os
    os.environ.setdefault("SCAML_DATA_DIR", str(data_dir))
    from scaml.benchmark import run_benchmark
    from scaml.datasets import load_task
    return run_benchmark(load_task("tm_facs_to_droplet"), label_key="label", split_key="split", train="train",
                         test="test", models=["lr", "mlp"], progress=False)

def test_bootstrap_ci_contains_estimate_and_narrows(facs_to_droplet):
    from scaml.metrics import evaluate
    from scaml.metrics import bootstrap_metrics
    res = facs_to_droplet
    y = res.predictions["mlp"]["y_true"].to_numpy()
    P = res.proba["mlp"].to_numpy()
    assert len(y) == 1000
    full = bootstrap_metrics(y, P, res.classes, n_boot=300, random_state=1)
    ev = evaluate(y, P, res.classes)
    for m in ("accuracy", "f1_macro", "roc_auc_macro_ovr"):
        assert abs(full[m]["estimate"] - ev[m]) < 1e-12
        assert full[m]["lo"] <= full[m]["estimate"] <= full[m]["hi"]
    assert full["accuracy"]["hi"] - full["accuracy"]["lo"] > 0.005      # a real interval, not a point
    # a stratified quarter of the cells: the interval must be wider
    rng = np.random.default_rng(0)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: max(2, (y == c).sum() // 4)] for c in np.unique(y)])
    small = bootstrap_metrics(y[keep], P[keep], res.classes, n_boot=300, random_state=1)
    for m in ("accuracy", "f1_macro"):
        assert small[m]["hi"] - small[m]["lo"] > 1.4 * (full[m]["hi"] - full[m]["lo"]), m
    # seeded
    assert bootstrap_metrics(y, P, res.classes, n_boot=300, random_state=1) == full

def test_mcnemar_known_table():
    from scaml.metrics import mcnemar
    # 15 cells only A right, 5 only B right: exact two-sided p = 2 * P(X <= 5 | n=20, 1/2) = 0.04139
    a = np.r_[np.ones(15), np.zeros(5), np.ones(80)].astype(bool)
    b = np.r_[np.zeros(15), np.ones(5), np.ones(80)].astype(bool)
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"], r["method"]) == (15, 5, "exact binomial")
    assert abs(r["p_value"] - 0.041389465) < 1e-8
    # 60 vs 30 discordant: chi-square with continuity correction, (|60-30|-1)^2/90
    a = np.r_[np.ones(60), np.zeros(30)].astype(bool)
    r = mcnemar(a, ~a)
    assert r["method"].startswith("chi-square") and abs(r["statistic"] - 29**2 / 90) < 1e-12
    assert abs(r["p_value"] - 0.002235) < 1e-5

def test_compare_verdicts(facs_to_droplet, tmp_path):
    from scaml.results import write_results
    from scaml.metrics import compare_models
    from scaml.results import compare_results_dir
    res = facs_to_droplet
    write_results(res, tmp_path / "f2d", plots=False, save_models=False)
    c = compare_results_dir(tmp_path / "f2d", "mlp", "lr", n_boot=500)
    d = c["diff"]["f1_macro"]
    assert d["lo"] <= d["estimate"] <= d["hi"]
    if d["lo"] > 0: assert c["verdict"].startswith("mlp beats lr by ")
    elif d["hi"] < 0: assert c["verdict"].startswith("lr beats mlp by ")
    else: assert c["verdict"].startswith("no detectable difference in macro-F1 between mlp and lr")
    assert "McNemar p = " in c["verdict"]
    # a model against a copy of itself with 10% of its calls broken: a detectable difference
    y = res.predictions["lr"]["y_true"].to_numpy()
    P = res.proba["lr"].to_numpy()
    broken = P.copy()
    idx = np.random.default_rng(0).choice(len(y), 100, replace=False)
    broken[idx] = np.roll(broken[idx], 1, axis=1)
    c2 = compare_models(y, P, broken, res.classes, names=("lr", "lr_broken"), n_boot=500)
    assert c2["verdict"].startswith("lr beats lr_broken by 0."), c2["verdict"]
    assert c2["mcnemar"]["p_value"] < 1e-6
    c3 = compare_models(y, P, P, res.classes, names=("lr", "same"), n_boot=100)
    assert c3["verdict"].startswith("no detectable difference") and c3["mcnemar"]["p_value"] == 1.0

# ---------------------------------------------------------------- top genes on Tabula Muris droplet

@pytest.fixture(scope="module")
def droplet_models(data_dir):
    import os
    os.environ.setdefault("SCAML_DATA_DIR", str(data_dir))
    from scaml.datasets import load_dataset
    from scaml.models import CellTypeModel
    from scaml.preprocess import Preprocessor
    ad = load_dataset("actinn_tm_droplet")
    assert ad.n_vars == 19371
    models = {m: CellTypeModel(m, preprocessor=Preprocessor(gene_selection="all"), class_weight="balanced",
                               **({"n_estimators": 20} if m == "xgb" else {})).fit(ad, label_key="cell_type")
              for m in ("lr", "xgb")}
    return ad, models

@pytest.mark.parametrize("model", ["lr", "xgb"])
def test_top_genes_find_known_markers(droplet_models, model):
    from scaml.explain import top_genes
    ad, models = droplet_models
    t = top_genes(models[model], ad, n_top=20)
    assert len(models[model].preprocessor.features_) == 19371
    assert set(t["class"]) == {"B cell", "T cell", "NK cell", "Monocyte", "Granulocyte"}
    b = set(t[t["class"] == "B cell"].gene)
    tc = set(t[t["class"] == "T cell"].gene)
    hits_b, hits_t = [g for g in B_MARKERS if g in b], [g for g in T_MARKERS if g in tc]
    print(f"{model}: B cell markers in top 20: {hits_b}; T cell markers in top 20: {hits_t}")
    assert len(hits_b) >= 2, (model, sorted(b))
    assert len(hits_t) >= 2, (model, sorted(tc))

def test_top_genes_overlap_and_dotplot(droplet_models):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scaml.explain import dotplot, overlap_top_genes, top_genes
    ad, models = droplet_models
    a, b = top_genes(models["lr"], ad, n_top=20), top_genes(models["xgb"], ad, n_top=20)
    ov = overlap_top_genes(a, b).set_index("class")
    assert ov.loc["B cell", "n_shared"] >= 2 and "Cd79a" in ov.loc["B cell", "shared"].split(";")
    ax = dotplot(ad, a, label_key="cell_type", n_genes=3)
    assert len(ax.get_xticklabels()) == len(set(a.groupby("class").head(3).gene))
    # Cd79a: expressed by most B cells, few T cells
    from scaml.preprocess import normalize_log1p
    X = normalize_log1p(ad.X)[:, list(ad.var_names).index("Cd79a")].toarray().ravel()
    lab = ad.obs.cell_type.to_numpy()
    assert (X[lab == "B cell"] > 0).mean() > 0.8 > 0.2 > (X[lab == "T cell"] > 0).mean()
    plt.close("all")
