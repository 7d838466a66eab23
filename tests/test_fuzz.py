"""Property-based tests over small random AnnData objects: splits, labels, metrics, preprocessing and a whole run.

Any exception other than the documented input errors (ValueError/KeyError with scaml's messages) is a failure.
"""
from __future__ import annotations

import warnings

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaml.benchmark import run_benchmark

from scaml.metrics import evaluate

from scaml.splits import split_by_key, split_random
from scaml.data import clean_labels, describe_matrix
from scaml.preprocess import Preprocessor

SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
MISSING = [None, np.nan, "", "nan", "NA", " "]
EXPECTED = ("single class", "has no labelled cells", "every value of", "test side is empty", "not found in",
            "both the training and the test", "must be at least", "only ", "kept none of the",
            "random split left the test side empty")

@st.composite
def adatas(draw, max_obs: int = 40, max_vars: int = 30):
    "A small AnnData: counts or log-normalised X, sparse or dense, labels with gaps, a batch column."
    n_obs = draw(st.integers(2, max_obs))
    n_vars = draw(st.integers(1, max_vars))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    X = rng.poisson(3, (n_obs, n_vars)).astype(np.float32) * (rng.random((n_obs, n_vars)) < density)
    if draw(st.booleans()):
        X = np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    n_classes = draw(st.integers(1, 5))
    labels = np.array([f"t{i}" for i in rng.integers(0, n_classes, n_obs)], dtype=object)
    n_missing = draw(st.integers(0, n_obs))
    labels[rng.choice(n_obs, n_missing, replace=False)] = [MISSING[i % len(MISSING)] for i in range(n_missing)]
    batches = np.array([f"b{i}" for i in rng.integers(0, draw(st.integers(1, 3)), n_obs)])
    obs = pd.DataFrame({"label": labels, "batch": pd.Categorical(batches)}, index=[f"c{i}" for i in range(n_obs)])
    a = anndata.AnnData(sp.csr_matrix(X) if draw(st.booleans()) else X, obs=obs,
                        var=pd.DataFrame(index=[f"g{j}" for j in range(n_vars)]))
    return a

def _expected(e: Exception) -> bool:
    return isinstance(e, (ValueError, KeyError)) and any(p in str(e) for p in EXPECTED)

@SETTINGS
@given(adatas(), st.lists(st.sampled_from(["b0", "b1", "b2", "H4"]), min_size=0, max_size=2, unique=True),
       st.lists(st.sampled_from(["b0", "b1", "b2"]), max_size=2, unique=True))
def test_split_by_key(a, train, test):
    try:
        tr, te = split_by_key(a, split_key="batch", train=train, test=test or None)
    except ValueError as e:
        assert "no training values" in str(e) or _expected(e), e
        return
    col = a.obs.batch.astype(str).to_numpy()
    assert not (tr & te).any() and tr.any() and te.any()
    assert set(col[tr]) == set(train) & set(col)

@SETTINGS
@given(st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=60), st.floats(0.05, 0.95),
       st.integers(0, 100))
def test_split_random(labels, test_size, seed):
    labels = np.array(labels)
    tr, te = split_random(labels, test_size=test_size, random_state=seed)
    assert not (tr & te).any() and (tr | te).all()
    for c in np.unique(labels):                      # every class keeps a training cell
        assert tr[labels == c].any()
    tr2, te2 = split_random(labels, test_size=test_size, random_state=seed)
    assert (te == te2).all()

@SETTINGS
@given(adatas())
def test_clean_labels(a):
    raw = a.obs["label"]
    present = raw.notna() & ~raw.astype(str).str.strip().str.lower().isin(["", "nan", "na", "none", "<na>"])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            labels, keep = clean_labels(a, "label")
        except ValueError as e:
            assert not present.any() and "every value of adata.obs['label'] is missing" in str(e)
            return
    assert (keep == present.to_numpy()).all()
    assert all(lab.startswith("t") for lab in labels[keep]) and (labels[~keep] == "").all()
    dropped = int((~keep).sum())
    assert (len(w) == 1 and f"dropped {dropped} of {a.n_obs}" in str(w[0].message)) if dropped else not w

@SETTINGS
@given(st.integers(1, 50), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_evaluate_bounds(n, k, seed, ties):
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(k)]
    y = np.array(classes, dtype=object)[rng.integers(0, k, n)]
    P = np.ones((n, k)) if ties else rng.dirichlet(np.ones(k), n)
    P /= P.sum(1, keepdims=True)
    train_classes = classes[: max(1, k - 1)]
    m = evaluate(y, P, classes, train_classes=train_classes)
    for key in ["accuracy", "balanced_accuracy", "f1_macro", "f1_median"]:
        assert 0 <= m[key] <= 1, (key, m)
    for key in ["f1_macro_seen", "roc_auc_macro_ovr"]:
        assert np.isnan(m[key]) or 0 <= m[key] <= 1, (key, m)
    assert np.isnan(m["roc_auc_macro_ovr"]) == (len(set(y)) < 2)
    assert m["n_test"] == n and m["n_test_unseen"] == int((~np.isin(y, train_classes)).sum())

@SETTINGS
@given(adatas(), st.sampled_from(["hvg", "all", "actinn"]), st.integers(1, 40))
def test_preprocessor(a, selection, n_top):
    info = describe_matrix(a.X)
    assert info["kind"] in ("counts", "lognorm") and not info["negative"] and not info["nonfinite"]
    try:
        pp = Preprocessor(gene_selection=selection, n_top_genes=n_top).fit(a)
    except ValueError as e:                          # ACTINN's percentile filter on a handful of genes
        assert selection == "actinn" and "kept none of the" in str(e), e
        return
    X = pp.transform(a)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32 and np.isfinite(X.data).all()
    expect = min(n_top, a.n_vars) if selection == "hvg" else a.n_vars if selection == "all" else None
    assert X.shape == (a.n_obs, expect if expect is not None else len(pp.features))
    assert len(set(pp.features)) == len(pp.features) and len(pp.features) >= 1

@SETTINGS
@given(adatas(max_obs=60), st.sampled_from(["key", "random", "files"]), st.sampled_from(["lr", "mlp", "xgb"]))
def test_run_benchmark(a, layout, model):
    kw = {"random": dict(split="random", test_size=0.3),
          "key": dict(split_key="batch", train="b0"),
          "files": dict(adata_test=a[a.obs.batch != "b0"].copy())}[layout]
    src = a if layout != "files" else a[a.obs.batch == "b0"].copy()
    params = {"xgb": {"n_estimators": 5, "n_jobs": 1}, "mlp": {"max_iter": 5}}.get(model, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = run_benchmark(src, label_key="label", models=[model], n_top_genes=20, progress=False,
                                model_params={model: params} if params else None, **kw)
        except (ValueError, KeyError) as e:
            assert _expected(e) or "is empty (shape" in str(e) or "has no cells" in str(e), repr(e)
            return
    P = res.proba[model].to_numpy()
    assert np.isfinite(P).all() and (P >= 0).all() and np.allclose(P.sum(1), 1)
    m = res.metrics[model]
    for key in ["accuracy", "balanced_accuracy", "f1_macro", "f1_median"]:
        assert 0 <= m[key] <= 1
    assert np.isnan(m["roc_auc_macro_ovr"]) or 0 <= m["roc_auc_macro_ovr"] <= 1
    assert list(res.proba[model].columns) == res.classes

@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_preprocessor_refuses_bad_values(bad):
    X = np.ones((5, 4), dtype=np.float32)
    X[-1, -1] = bad
    a = anndata.AnnData(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="neither counts nor log-normalised"):
        Preprocessor(n_top_genes=2).fit(a)

# ------------------------------------------------------------------ output paths and flag values
import argparse  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from scaml.core import check_outfile  # noqa: E402
from scaml.results import check_outdir  # noqa: E402

PATH_ERRORS = (ValueError, TypeError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
PARTS = st.sampled_from([".", "..", "res", "in.h5ad", "mine", "mine.csv", "notes.txt", "sub", "x.csv", "x.h5ad", "y.tsv"])

@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    "A folder with an input file, a user's folder and file, and a scaml results folder."
    root = tmp_path_factory.mktemp("paths")
    (root / "in.h5ad").write_bytes(b"input")
    (root / "mine").mkdir(); (root / "mine" / "notes.txt").write_text("keep")
    (root / "mine.csv").write_text("a,b\n")
    (root / "res").mkdir(); (root / "res" / "manifest.json").write_text('{"scaml_version": "0", "files": []}')
    return root

def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}

@SETTINGS
@given(st.lists(PARTS, min_size=1, max_size=3), st.booleans(), st.sampled_from(["dir", "csv", "h5ad"]))
def test_output_paths(playground, parts, overwrite, kind):
    """Any output path is accepted or refused with an error naming the flag; nothing is touched either way, and an
    accepted path is never the input, the current folder or a parent of it, or a user's file."""
    before = _snapshot(playground)
    cwd = os.getcwd()
    os.chdir(playground / "mine")
    try:
        path = Path(*parts)
        inp = playground / "in.h5ad"
        try:
            if kind == "dir":
                out = check_outdir(path, overwrite=overwrite, inputs=[inp], param="--outdir")
            else:
                out = check_outfile(path, overwrite=overwrite, inputs=[inp], param="--out",
                                    formats=(".csv", ".h5ad") if kind == "h5ad" else (".csv",),
                                    written_by_scaml=lambda p: False)
        except PATH_ERRORS as e:
            assert ("--outdir" if kind == "dir" else "--out") in str(e) or "outdir=" in str(e) or "out=" in str(e), e
        else:
            r = out.resolve()
            assert r != inp.resolve() and r not in inp.resolve().parents
            assert r != Path.cwd().resolve() and r not in Path.cwd().resolve().parents
            if r.exists():
                assert overwrite and r.is_dir() and (r / "manifest.json").is_file()     # only a scaml results folder
    finally:
        os.chdir(cwd)
    assert _snapshot(playground) == before

def _flag_actions():
    from scaml.cli import (learning_curve_parser, matrix_parser, novelty_parser, plot_parser, report_parser,
                           train_parser)
    out = []
    for make in (train_parser, matrix_parser, learning_curve_parser, novelty_parser, report_parser, plot_parser):
        p = make()
        for a in p._actions:
            if callable(a.type) and getattr(a.type, "__name__", "") in ("integer", "number"):
                out.append((p, a))
    return out

FLAG_ACTIONS = _flag_actions()

@SETTINGS
@given(st.sampled_from(range(len(FLAG_ACTIONS))),
       st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.sampled_from(["", " ", "1e3", "0x10", "1_000", "½", "nan", "-0", "3.0", "NaN", "inf"]),
                 st.text(max_size=8)))
def test_flag_values(i, value):
    "Every numeric flag takes a value in range or refuses it with a message naming the flag, never a traceback."
    p, action = FLAG_ACTIONS[i]
    flag = action.option_strings[0]
    try:
        v = action.type(value)
    except argparse.ArgumentTypeError as e:
        assert flag in str(e), (flag, value, e)
    else:
        assert isinstance(v, (int, float)) and np.isfinite(v), (flag, value, v)
        if action.type.__name__ == "integer": assert isinstance(v, int)
