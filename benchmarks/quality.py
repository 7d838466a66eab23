"""Accuracy across technologies, calibration, novelty of near types and input scales; writes benchmarks/quality.json.

Parts (run one with --part, default all; each part replaces its own block of quality.json):

- accuracy: feature transforms x models x soft-vote ensembles on four cross-batch tasks, test-side macro-F1 with a
  95% stratified bootstrap interval. The *choice* among them uses only the training side: 3-fold stratified CV of
  the training cells (none of the tasks has a group column inside its training side) in which every held-out fold
  is passed through a simulated technology shift (per-gene capture bias, a 10x change of sequencing depth,
  Poisson resampling) before prediction.
- calibration: ECE (15 bins) and risk-coverage of every model on the test side, before and after a temperature or
  isotonic calibrator fitted on cross-fitted held-out training cells.
- loto: leave one type out of training, score the test side with each candidate novelty score; AUROC per type.
- scale: the same data given as counts, CPM, TPM-like, log1p and log2; macro-F1 read "as is" vs after detection.

Run: SCAML_DATA_DIR=../shared/data python benchmarks/quality.py [--part accuracy]
     python benchmarks/quality.py --smoke --out /tmp/q.json [--part ...]   # 300 cells of one or two tasks: that it runs
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scaml.core import package_versions as _versions
from scaml.results import to_json as _json
from scaml.datasets import load_task
from scaml.backends import get_backend
from scaml.preprocess import Preprocessor, normalize_log1p
from scaml.metrics import bootstrap_metrics

warnings.filterwarnings("ignore")
OUT = Path(__file__).with_name("quality.json")
TASKS = {  # name: (task, train value, test value)
    "tm_facs_to_droplet": ("tm_facs_to_droplet", "train", "test"),
    "tm_droplet_to_facs": ("tm_facs_to_droplet", "test", "train"),
    "cellbench_celseq2_to_dropseq": ("cellbench_celseq2_to_dropseq", "train", "test"),
    "cellbench_plate1_to_plates23": ("cellbench_plate1_to_plates23", "train", "test"),
}
MODELS = ("lr", "rf", "xgb", "mlp")
ENSEMBLES = {"vote_lr_mlp_xgb": ("lr", "mlp", "xgb"), "vote_all": MODELS}


def load(name):
    task, tr, te = TASKS[name]
    a = load_task(task)
    A, B = a[a.obs.split == tr].copy(), a[a.obs.split == te].copy()
    classes = sorted(set(A.obs.label.astype(str)))
    return A, B, classes


# ---------------------------------------------------------------- features
def _std(D):
    sd = D.std(0)
    return np.where(sd > 0, sd, 1.0)


def features(Ctr, Cte, kind: str, n_top_genes: int = 2000):
    """Training and test feature matrices (dense float32) from counts, fitted on the training cells only except
    for the per-side ('query') standardisation, which standardises each side by its own cells."""
    Ltr, Lte = normalize_log1p(Ctr), normalize_log1p(Cte)
    if Ltr.shape[1] > n_top_genes:
        from scaml.preprocess import highly_variable_genes
        idx = highly_variable_genes(Ltr, n_top_genes)
        Ltr, Lte = Ltr[:, idx], Lte[:, idx]
    Dtr, Dte = Ltr.toarray().astype(np.float64), Lte.toarray().astype(np.float64)
    if kind.startswith("base"):                 # the library's default: x / sd_train, centred value clipped at 10
        clip = float(kind.split("_clip")[1]) if "_clip" in kind else 10.0
        mu, sd = Dtr.mean(0), _std(Dtr)
        Ftr, Fte = Dtr / sd, Dte / sd
        cap = clip + mu / sd
        Ftr, Fte = np.minimum(Ftr, cap), np.minimum(Fte, cap)
    elif kind == "query_std":                   # each side standardised by its own cells (no labels used)
        Ftr, Fte = [np.clip((D - D.mean(0)) / _std(D), -10, 10) for D in (Dtr, Dte)]
    elif kind == "rank":                        # per-cell rank of the detected genes, then train standardisation
        from scipy.stats import rankdata
        R = [np.where(D > 0, rankdata(D, axis=1) / D.shape[1], 0.0) for D in (Dtr, Dte)]
        mu, sd = R[0].mean(0), _std(R[0])
        Ftr, Fte = [np.clip((r - mu) / sd, -10, 10) for r in R]
    elif kind == "binary":                      # detected or not, scaled by the training sd
        Btr, Bte = (Dtr > 0).astype(float), (Dte > 0).astype(float)
        sd = _std(Btr)
        Ftr, Fte = Btr / sd, Bte / sd
    elif kind == "binary_query_std":
        Ftr, Fte = [np.clip(((D > 0) - (D > 0).mean(0)) / _std((D > 0).astype(float)), -10, 10) for D in (Dtr, Dte)]
    elif kind == "nonzero_align":               # query's detected values shifted per gene to the training mean of
        def nzmean(D):                          # detected values; zeros stay zeros; then the default scaling
            n = (D > 0).sum(0)
            return np.where(n > 0, D.sum(0) / np.maximum(n, 1), 0.0), n
        mtr, ntr = nzmean(Dtr)
        mte, nte = nzmean(Dte)
        ok = (ntr >= 10) & (nte >= 10)
        Dte = np.where(Dte > 0, np.maximum(Dte + np.where(ok, mtr - mte, 0.0), 1e-3), 0.0)
        mu, sd = Dtr.mean(0), _std(Dtr)
        cap = 10.0 + mu / sd
        Ftr, Fte = np.minimum(Dtr / sd, cap), np.minimum(Dte / sd, cap)
    else:
        raise ValueError(kind)
    return Ftr.astype(np.float32), Fte.astype(np.float32)


FEATURES = ("base", "base_clip3", "query_std", "rank", "binary", "binary_query_std", "nonzero_align")


# ---------------------------------------------------------------- models
def fit_predict(Ftr, ytr, Fte, k, models=MODELS, seed=0):
    out = {}
    for m in models:
        be = get_backend(m)(class_weight="balanced", random_state=seed).fit(Ftr, ytr, n_classes=k)
        out[m] = be.predict_proba(Fte)
    for e, ms in ENSEMBLES.items():
        if all(m in out for m in ms): out[e] = np.mean([out[m] for m in ms], 0)
    return out


def macro_f1(y, P, k):
    from sklearn.metrics import f1_score
    return float(f1_score(y, P.argmax(1), labels=list(range(k)), average="macro", zero_division=0))


# ---------------------------------------------------------------- simulated technology shift
def shift_counts(C, rng, depth: float):
    """Counts of the same cells as if measured by another technology: per-gene capture bias (log-normal, sd 0.7),
    the library size times `depth`, Poisson resampling."""
    C = sp.csr_matrix(C, dtype=np.float64)
    g = np.exp(rng.normal(0, 0.7, C.shape[1]))
    lam = C @ sp.diags(g)
    lam = sp.csr_matrix(lam)
    lam.data *= depth
    out = lam.copy()
    out.data = rng.poisson(lam.data).astype(np.float64)
    out.eliminate_zeros()
    return out


CV_FEATURES = ("base", "query_std", "rank", "binary")
CV_MODELS = ("lr", "xgb", "mlp")


def shift_cv(A, classes, *, feature_kinds=CV_FEATURES, n_folds=3, seed=0, models=CV_MODELS):
    """Macro-F1 of every feature kind x model on held-out training folds, plain and under simulated shifts."""
    from sklearn.model_selection import StratifiedKFold
    y = pd.Index(classes).get_indexer(A.obs.label.astype(str))
    C = sp.csr_matrix(A.X)
    rng = np.random.default_rng(seed)
    res = {}
    skf = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for f, (tr, ho) in enumerate(skf.split(np.zeros(len(y)), y)):
        views = {"none": C[ho], "depth_down": shift_counts(C[ho], rng, 0.1), "depth_up": shift_counts(C[ho], rng, 10.0)}
        for kind in feature_kinds:
            for vname, Cho in views.items():
                Ftr, Fho = features(C[tr], Cho, kind)
                for m, P in fit_predict(Ftr, y[tr], Fho, len(classes), models=models, seed=seed).items():
                    res.setdefault(kind, {}).setdefault(m, {}).setdefault(vname, []).append(macro_f1(y[ho], P, len(classes)))
        print(f"  fold {f} done", flush=True)
    return {k: {m: {v: float(np.mean(s)) for v, s in d.items()} for m, d in mm.items()} for k, mm in res.items()}


def part_accuracy():
    out = {"protocol": "test side: macro-F1 with 95% stratified bootstrap interval (200 resamples); choice: training-side "
                       "3-fold stratified CV, held-out folds unshifted and under simulated technology shifts (depth x0.1 "
                       "and x10 with per-gene log-normal capture bias sd 0.7, Poisson resampling)",
           "tasks": {}}
    for name in TASKS:
        t0 = time.perf_counter()
        A, B, classes = load(name)
        k = len(classes)
        ytr = pd.Index(classes).get_indexer(A.obs.label.astype(str))
        yte_lab = B.obs.label.astype(str).to_numpy()
        blk = {"n_train": int(A.n_obs), "n_test": int(B.n_obs), "classes": classes, "test": {}}
        for kind in FEATURES:
            Ftr, Fte = features(A.X, B.X, kind)
            for m, P in fit_predict(Ftr, ytr, Fte, k).items():
                ci = bootstrap_metrics(yte_lab, P, classes, metrics=("f1_macro", "accuracy"))
                blk["test"].setdefault(kind, {})[m] = {"f1_macro": ci["f1_macro"]["estimate"], "lo": ci["f1_macro"]["lo"],
                                                       "hi": ci["f1_macro"]["hi"], "accuracy": ci["accuracy"]["estimate"]}
            print(name, kind, {m: round(v["f1_macro"], 3) for m, v in blk["test"][kind].items()}, flush=True)
        if name.startswith("tm_"):
            blk["training_cv"] = shift_cv(A, classes)
        blk["seconds"] = round(time.perf_counter() - t0, 1)
        out["tasks"][name] = blk
    return out


# ---------------------------------------------------------------- calibration
def crossfit_proba(F, y, k, models, *, n_folds=3, seed=0):
    """Held-out probabilities of every training cell from `n_folds` stratified folds (each model fitted without it)."""
    from sklearn.model_selection import StratifiedKFold
    out = {}
    for tr, ho in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        for m, P in fit_predict(F[tr], y[tr], F[ho], k, models=models, seed=seed).items():
            out.setdefault(m, np.zeros((len(y), k)))[ho] = P
    return out


def part_calibration(feature_kinds=("base",), models=MODELS + ("actinn",)):
    from scaml.calibration import calibration_metrics, fit_calibrator
    out = {"protocol": "calibrators fitted on 3-fold cross-fitted held-out training cells (stratified; no groups inside "
                       "the training sides), applied to the test side; ECE with 15 equal-width bins", "tasks": {}}
    for name in ("tm_facs_to_droplet", "tm_droplet_to_facs"):
        A, B, classes = load(name)
        k = len(classes)
        ytr = pd.Index(classes).get_indexer(A.obs.label.astype(str))
        yte = pd.Index(classes).get_indexer(B.obs.label.astype(str))
        for kind in feature_kinds:
            Ftr, Fte = features(A.X, B.X, kind)
            ho = crossfit_proba(Ftr, ytr, k, models)
            te = fit_predict(Ftr, ytr, Fte, k, models=models)
            blk = {}
            for m in te:
                row = {"uncalibrated": calibration_metrics(te[m], yte),
                       "heldout_ece_uncalibrated": calibration_metrics(ho[m], ytr)["ece"]}
                for meth in ("temperature", "isotonic"):
                    cal = fit_calibrator(ho[m], ytr, method=meth)
                    row[meth] = calibration_metrics(cal.transform(te[m]), yte)
                    if meth == "temperature": row["temperature"]["T"] = cal.temperature_
                blk[m] = row
                print(name, kind, m, {c: round(row[c]["ece"], 3) for c in ("uncalibrated", "temperature", "isotonic")},
                      flush=True)
            out["tasks"].setdefault(name, {})[kind] = blk
    return out


# ---------------------------------------------------------------- leave one type out
def _lr_logits(Ftr, ytr, Fte, k, seed=0):
    be = get_backend("lr")(class_weight="balanced", random_state=seed).fit(Ftr, ytr, n_classes=k)
    return np.asarray(Fte @ be.W_, np.float64) + be.b_, be


def novelty_scores(Ftr, ytr, Fte, *, seed=0):
    """Every candidate novelty score of the test cells, each fitted on the training cells only."""
    from scaml.ood import KNNScore, MahalanobisScore, ScoreCombiner, energy_score, entropy_score, maxproba_score
    k = int(ytr.max()) + 1
    Z, be = _lr_logits(Ftr, ytr, Fte, k, seed)
    P = np.exp(Z - Z.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
    s = {"maxproba_lr": maxproba_score(P), "entropy_lr": entropy_score(P), "energy_lr": energy_score(Z)}
    mlp = get_backend("mlp")(class_weight="balanced", random_state=seed).fit(Ftr, ytr, n_classes=k)
    s["maxproba_mlp"] = maxproba_score(mlp.predict_proba(Fte))
    maha = MahalanobisScore(n_components=50, random_state=seed).fit(Ftr, ytr)
    s["maha_features"] = maha.score(Fte)
    s["maha_features_untied"] = MahalanobisScore(n_components=50, tied=False, random_state=seed).fit(Ftr, ytr).score(Fte)
    Ztr = np.asarray(Ftr @ be.W_, np.float64) + be.b_
    s["maha_logits"] = MahalanobisScore(n_components=None).fit(Ztr, ytr).score(Z)
    knn = KNNScore(k=10, n_components=50, random_state=seed).fit(Ftr)
    s["knn_features"] = knn.score(Fte)
    # combinations: reference = held-out training cells (2-fold cross-fit)
    from sklearn.model_selection import StratifiedKFold
    ref = {"maha_features": [], "knn_features": [], "maxproba_lr": []}
    for a, b in StratifiedKFold(2, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr):
        ref["maha_features"].append(MahalanobisScore(n_components=50, random_state=seed).fit(Ftr[a], ytr[a]).score(Ftr[b]))
        ref["knn_features"].append(KNNScore(k=10, n_components=50, random_state=seed).fit(Ftr[a]).score(Ftr[b]))
        Zb, _ = _lr_logits(Ftr[a], ytr[a], Ftr[b], k, seed)
        Pb = np.exp(Zb - Zb.max(1, keepdims=True)); Pb /= Pb.sum(1, keepdims=True)
        ref["maxproba_lr"].append(maxproba_score(Pb))
    ref = {n: np.concatenate(v) for n, v in ref.items()}
    for combo in (("maha_features", "knn_features"), ("maha_features", "maxproba_lr"),
                  ("maha_features", "knn_features", "maxproba_lr")):
        c = ScoreCombiner().fit({n: ref[n] for n in combo})
        s["+".join(combo)] = c.score({n: s[n] for n in combo})
    return s


def loto_task(name, *, train, test, feature_kinds=("base",), min_test=20):
    from sklearn.metrics import roc_auc_score
    a = load_task(name)
    A, B = a[a.obs.split == train], a[a.obs.split == test]
    la, lb = A.obs.label.astype(str).to_numpy(), B.obs.label.astype(str).to_numpy()
    types = [t for t in sorted(set(la)) if (lb == t).sum() >= min_test]
    res = {}
    for kind in feature_kinds:
        per = {}
        for t in types:
            keep = la != t
            classes = sorted(set(la[keep]))
            ytr = pd.Index(classes).get_indexer(la[keep])
            Ftr, Fte = features(A.X[keep], B.X, kind)
            sc = novelty_scores(Ftr, ytr, Fte)
            pos = lb == t
            per[t] = {n: float(roc_auc_score(pos, v)) for n, v in sc.items()}
            print(name, kind, t, {n: round(v, 3) for n, v in per[t].items() if n in ("maxproba_lr", "maha_features",
                  "knn_features", "maha_features+knn_features+maxproba_lr")}, flush=True)
        names = list(next(iter(per.values())))
        res[kind] = {"per_type": per,
                     "mean": {n: float(np.mean([per[t][n] for t in types])) for n in names},
                     "min": {n: float(np.min([per[t][n] for t in types])) for n in names}}
    return {"types": types, "n_test_positive": {t: int((lb == t).sum()) for t in types}, **res}


def part_loto():
    out = {"protocol": "train without type T, score every test cell; AUROC with T's test cells as positives; types with "
                       ">= 20 test cells; every score fitted on training cells only (combinations: quantiles among "
                       "2-fold cross-fitted held-out training cells)", "tasks": {}}
    out["tasks"]["tm_facs_to_droplet"] = loto_task("tm_facs_to_droplet", train="train", test="test")
    out["tasks"]["tm_droplet_to_facs"] = loto_task("tm_facs_to_droplet", train="test", test="train")
    out["tasks"]["actinn_tutorial"] = loto_task("actinn_tutorial", train="train", test="test", feature_kinds=("base",))
    return out


def part_loto_default():
    """The library's default novelty score (`scaml.ood.leave_one_type_out` with its defaults: `TypeNoveltyScorer()`)
    on the Tabula Muris, tutorial and Kang tasks, and the same without the query smoothing."""
    from scaml.ood import DEFAULT_SMOOTH, TYPE_COMPONENTS, TYPE_SHIFT, leave_one_type_out
    out = {"protocol": "scaml.ood.leave_one_type_out with its defaults: TypeNoveltyScorer, components "
                       f"{list(TYPE_COMPONENTS)}, the query's shared shift removed ({TYPE_SHIFT!r}), each component's "
                       f"quantile among held-out training cells of the same assigned type, smooth={DEFAULT_SMOOTH} "
                       "(each test cell's score averaged over its nearest test cells); 'no_smoothing': smooth=0; library "
                       "preprocessing (2,000 HVGs, log1p CP10k, scaled); 95% intervals from 200 bootstrap resamples of "
                       "the scored test cells, scores held fixed (the same resample for every type, so the mean over "
                       "types has one too)", "components": list(TYPE_COMPONENTS), "shift": TYPE_SHIFT,
           "smooth": DEFAULT_SMOOTH, "tasks": {}, "no_smoothing": {}}
    tasks = {**NOVELTY_TASKS, "kang_ctrl_to_stim": ("kang_ctrl_to_stim", "train", "test"),
             "kang_stim_to_ctrl": ("kang_stim_to_ctrl", "train", "test")}
    for key, (task, tr, te) in tasks.items():
        for blk, sm in (("tasks", DEFAULT_SMOOTH), ("no_smoothing", 0)):
            df = leave_one_type_out(load_task(task), label_key="label", split_key="split", train=tr, test=te, smooth=sm)
            out[blk][key] = {"per_type": df.to_dict(orient="index"), "mean_auroc": float(df.auroc.mean()),
                             "mean_auroc_lo": df.attrs["mean_auroc"]["lo"], "mean_auroc_hi": df.attrs["mean_auroc"]["hi"],
                             "min_auroc": float(df.auroc.min())}
            print(key, blk, df.round(3).to_string(), flush=True)
    return out


def part_library():
    """What one command gives: run_benchmark with the default models, calibration and the soft vote (ensemble=True)."""
    from scaml.benchmark import run_benchmark
    out = {"protocol": "run_benchmark(models=lr rf xgb mlp, calibrate='temperature', ensemble=True), the library's "
                       "default preprocessing; = scaml_train --dataset TASK --ensemble", "tasks": {}}
    keys = ("f1_macro", "accuracy", "ece", "ece_uncalibrated", "temperature", "aurc", "accuracy_at_80",
            "accuracy_at_90", "accuracy_at_95")
    for name, (task, tr, te) in TASKS.items():
        res = run_benchmark(load_task(task), label_key="label", split_key="split", train=tr, test=te, ensemble=True,
                            progress=False)
        out["tasks"][name] = {m: {**{k: r.get(k) for k in keys}, "f1_macro_lo": r["ci"]["f1_macro"]["lo"],
                                  "f1_macro_hi": r["ci"]["f1_macro"]["hi"]} for m, r in res.metrics.items()}
        out["tasks"][name]["_input_scale"] = res.manifest["input_scale"]
        print(name, {m: round(r["f1_macro"], 3) for m, r in res.metrics.items()}, flush=True)
    return out


# ---------------------------------------------------------------- input scale
def as_scale(X, kind, glen):
    X = sp.csr_matrix(X, dtype=np.float64)
    lib = np.asarray(X.sum(1)).ravel(); lib[lib == 0] = 1
    cpm = sp.csr_matrix(sp.diags(1e6 / lib) @ X)
    if kind == "counts": return X
    if kind == "cpm": return cpm
    if kind == "tpm":
        T = X @ sp.diags(1 / glen)
        return sp.csr_matrix(sp.diags(1e6 / np.maximum(np.asarray(T.sum(1)).ravel(), 1e-12)) @ T)
    if kind == "log1p_cp10k": return normalize_log1p(X)
    if kind == "log1p_cpm": L = cpm.copy(); L.data = np.log1p(L.data); return L
    if kind == "log2_cpm": L = cpm.copy(); L.data = np.log2(L.data + 1); return L
    raise ValueError(kind)


def part_scale(models=("lr", "mlp")):
    import anndata
    from scaml.input_scale import detect_input_scale
    out = {"protocol": "both sides converted to the same scale (TPM-like: counts divided by a log-normal gene-length "
                       "factor, sd 0.6, then scaled to 1e6); 'as_is' = the preprocessing before scale detection (non-integer "
                       "values used as they are); 'detected' = the Preprocessor with input_scale='auto'", "tasks": {}}
    for name in ("tm_facs_to_droplet", "tm_droplet_to_facs"):
        A, B, classes = load(name)
        k = len(classes)
        glen = np.random.default_rng(0).lognormal(0, 0.6, A.n_vars)
        ytr = pd.Index(classes).get_indexer(A.obs.label.astype(str))
        yte = pd.Index(classes).get_indexer(B.obs.label.astype(str))
        blk = {}
        for kind in ("counts", "cpm", "tpm", "log1p_cp10k", "log1p_cpm", "log2_cpm"):
            Xa, Xb = as_scale(A.X, kind, glen), as_scale(B.X, kind, glen)
            row = {"detected_scale": [detect_input_scale(Xa), detect_input_scale(Xb)]}
            for how in ("as_is", "detected"):
                a2 = anndata.AnnData(sp.csr_matrix(Xa, dtype=np.float32), obs=A.obs[[]].copy(), var=A.var[[]].copy())
                b2 = anndata.AnnData(sp.csr_matrix(Xb, dtype=np.float32), obs=B.obs[[]].copy(), var=B.var[[]].copy())
                # as_is: the preprocessing before scale detection (counts normalised, anything else used as it is)
                pp = Preprocessor(input_scale=("counts" if kind == "counts" else "log1p") if how == "as_is" else "auto",
                                  trust_input_scale=how == "as_is")
                Ftr, Fte = pp.fit_transform(a2), pp.transform(b2)
                row[how] = {m: macro_f1(yte, P, k) for m, P in fit_predict(Ftr, ytr, Fte, k, models=models).items()}
            blk[kind] = row
            print(name, kind, row, flush=True)
        out["tasks"][name] = blk
    return out


# ---------------------------------------------------------------- per-batch standardisation of the query
ALL_TASKS = {**TASKS, "actinn_tutorial": ("actinn_tutorial", "train", "test")}


def _ci(y_lab, P, classes):
    ci = bootstrap_metrics(y_lab, P, classes, metrics=("f1_macro", "accuracy"))
    return {"f1_macro": ci["f1_macro"]["estimate"], "lo": ci["f1_macro"]["lo"], "hi": ci["f1_macro"]["hi"],
            "accuracy": ci["accuracy"]["estimate"]}


def part_query_scale(models=MODELS):
    """The library's Preprocessor with scale_by='train' (default), scale_by='query' and align_query=True ('align') on
    every public task: macro-F1 with its 95% interval, and ECE before and after temperature / isotonic calibration
    fitted on cross-fitted held-out training cells (the run_benchmark protocol)."""
    from scaml.calibration import calibration_metrics, fit_calibrator
    out = {"protocol": "Preprocessor(scale_by='train' | 'query') or Preprocessor(align_query=True) fitted on the training side "
                       "(2,000 HVGs, log1p CP10k), models with "
                       "balanced class weights; macro-F1 with a 95% stratified bootstrap interval (200 resamples); "
                       "vote = mean of the four models' probabilities; calibrators fitted on 3-fold cross-fitted "
                       "held-out training cells; ECE 15 bins on the test side", "tasks": {}}
    for name, (task, tr, te) in ALL_TASKS.items():
        a = load_task(task)
        A, B = a[a.obs.split == tr].copy(), a[a.obs.split == te].copy()
        classes = sorted(set(A.obs.label.astype(str)))
        k = len(classes)
        ytr = pd.Index(classes).get_indexer(A.obs.label.astype(str))
        yte_lab = B.obs.label.astype(str).to_numpy()
        yte = pd.Index(classes).get_indexer(yte_lab)
        blk = {"n_train": int(A.n_obs), "n_test": int(B.n_obs), "n_classes": k}
        for by in ("train", "query", "align"):
            pp = Preprocessor(align_query=True).fit(A) if by == "align" else Preprocessor(scale_by=by).fit(A)
            Ftr, Fte = pp.transform(A), pp.transform(B)
            Ftr, Fte = [F.toarray() if sp.issparse(F) else F for F in (Ftr, Fte)]
            te_p = fit_predict(Ftr, ytr, Fte, k, models=models)
            ho = crossfit_proba(Ftr, ytr, k, models)
            row = {}
            for m, P in te_p.items():
                r = _ci(yte_lab, P, classes)
                r["ece_uncalibrated"] = calibration_metrics(P, yte)["ece"]
                for meth in ("temperature", "isotonic"):
                    cal = fit_calibrator(ho[m], ytr, method=meth)
                    r[f"ece_{meth}"] = calibration_metrics(cal.transform(P), yte)["ece"]
                    if meth == "temperature": r["T"] = cal.temperature_
                row[m] = r
            blk[by] = row
            print(name, by, {m: (round(r["f1_macro"], 3), round(r["ece_temperature"], 3)) for m, r in row.items()},
                  flush=True)
        out["tasks"][name] = blk
    return out


def part_feature_ideas(kinds=("base", "query_std", "nonzero_align"), models=MODELS, smooth=(10, 30)):
    """Transforms that use the query's own cells (no labels) on every public task, the 12-type tutorial split
    included: features standardised or aligned by the query, and probabilities averaged over each query cell's
    nearest query cells (`@knnK`); macro-F1 with its 95% interval."""
    from scaml.ood import query_neighbors
    out = {"protocol": "features() of this file (2,000 HVGs of the training side, log1p CP10k); models with balanced "
                       "class weights; macro-F1 with a 95% stratified bootstrap interval (200 resamples); @knnK: each "
                       "test cell's probabilities averaged over its K nearest test cells (scaml.ood.query_neighbors: "
                       "a PCA of the test cells standardised by themselves)", "tasks": {}}
    for name, (task, tr, te) in ALL_TASKS.items():
        a = load_task(task)
        A, B = a[a.obs.split == tr].copy(), a[a.obs.split == te].copy()
        classes = sorted(set(A.obs.label.astype(str)))
        ytr = pd.Index(classes).get_indexer(A.obs.label.astype(str))
        yte_lab = B.obs.label.astype(str).to_numpy()
        blk = {}
        nbrs = {}
        for kind in kinds:
            Ftr, Fte = features(A.X, B.X, kind)
            if not nbrs:                          # the query's own neighbours (its own PCA), no labels
                nbrs = {k: query_neighbors(Fte, k) for k in smooth}
            for m, P in fit_predict(Ftr, ytr, Fte, len(classes), models=models).items():
                blk.setdefault(kind, {})[m] = _ci(yte_lab, P, classes)
                for k, nb in nbrs.items():
                    blk.setdefault(f"{kind}@knn{k}", {})[m] = _ci(yte_lab, P[nb].mean(1), classes)
            for kk in [kind] + [f"{kind}@knn{k}" for k in smooth]:
                print(name, kk, {m: round(r["f1_macro"], 3) for m, r in blk[kk].items()}, flush=True)
        out["tasks"][name] = blk
    return out

# ---------------------------------------------------------------- novelty: choosing the default on training cells
NOVELTY_COMPONENTS = ("maxproba", "maha", "maha_logits")
NOVELTY_SUBSETS = (("maxproba",), ("maha",), ("maha_logits",), ("maxproba", "maha"), ("maxproba", "maha_logits"),
                   ("maxproba", "maha", "maha_logits"))
NOVELTY_SMOOTH = (0, 10, 30)


def loto_candidates(A, B, *, min_test=20, seed=0):
    """AUROC of every candidate novelty score (component subsets x query smoothing) for each type with `min_test`
    cells in B, leaving it out of A. One NoveltyScorer with all components per type: a subset's combined score is the
    mean of its components' quantiles among held-out training cells, exactly what NoveltyScorer(subset) gives."""
    from sklearn.metrics import roc_auc_score
    from scaml.ood import NoveltyScorer, query_neighbors
    la, lb = A.obs.label.astype(str).to_numpy(), B.obs.label.astype(str).to_numpy()
    types = [t for t in sorted(set(la)) if (lb == t).sum() >= min_test]
    per = {}
    for t in types:
        keep = la != t
        classes = sorted(set(la[keep]))
        pp = Preprocessor().fit(A[keep])
        Z, Zq = pp.transform(A[keep]), pp.transform(B)
        ns = NoveltyScorer(NOVELTY_COMPONENTS, smooth=0, random_state=seed).fit(Z, pd.Index(classes).get_indexer(la[keep]))
        Qt = ns.combiner_.quantiles(ns.score_components(Zq))
        nbrs = {k: query_neighbors(Zq, k, random_state=seed) for k in NOVELTY_SMOOTH if k > 1}
        row = {}
        for sub in NOVELTY_SUBSETS:
            s = np.mean([Qt[c] for c in sub], 0)
            for k in NOVELTY_SMOOTH:
                row[f"{'+'.join(sub)}@knn{k}"] = float(roc_auc_score(lb == t, s[nbrs[k]].mean(1) if k > 1 else s))
        per[t] = row
    names = list(next(iter(per.values())))
    return {"n_positive": {t: int((lb == t).sum()) for t in types}, "per_type": per,
            "mean": {n: float(np.mean([per[t][n] for t in per])) for n in names},
            "min": {n: float(np.min([per[t][n] for t in per])) for n in names}}


NOVELTY_TASKS = {"tm_facs_to_droplet": ("tm_facs_to_droplet", "train", "test"),
                 "tm_droplet_to_facs": ("tm_facs_to_droplet", "test", "train"),
                 "actinn_tutorial": ("actinn_tutorial", "train", "test")}


def part_loto_select(seed=0):
    """Leave one type out for every candidate score: inside each training side (two stratified halves: fit on one
    without T, score the other; types with >= 10 cells in the scored half) -- what the default is chosen on -- and on
    the test side (types with >= 20 test cells), reported only."""
    from sklearn.model_selection import StratifiedKFold
    out = {"protocol": "candidates: NoveltyScorer component subsets of maxproba (lr), maha (50-PC Mahalanobis), "
                       "maha_logits (Mahalanobis on centred log-probabilities), combined as mean quantiles among 2-fold "
                       "cross-fitted held-out training cells; @knnK: averaged over each scored cell's K nearest scored "
                       "cells (0: none). choice: mean over the three training sides of the training-side mean AUROC "
                       "(2 stratified halves, each scored by a scorer fitted on the other half without the type)",
           "training_side": {}, "test_side": {}}
    for key, (task, tr, te) in NOVELTY_TASKS.items():
        a = load_task(task)
        A, B = a[a.obs.split == tr].copy(), a[a.obs.split == te].copy()
        y = A.obs.label.astype(str).to_numpy()
        halves = [loto_candidates(A[i], A[j], min_test=10, seed=seed)
                  for i, j in StratifiedKFold(2, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)]
        names = list(halves[0]["mean"])
        out["training_side"][key] = {"mean": {n: float(np.mean([h["mean"][n] for h in halves])) for n in names},
                                     "min": {n: float(np.min([h["min"][n] for h in halves])) for n in names},
                                     "halves": halves}
        out["test_side"][key] = loto_candidates(A, B, min_test=20, seed=seed)
        for side in ("training_side", "test_side"):
            r = out[side][key]
            print(key, side, {n: (round(r["mean"][n], 3), round(r["min"][n], 3)) for n in names}, flush=True)
    names = list(next(iter(out["training_side"].values()))["mean"])
    out["training_side_mean"] = {n: float(np.mean([b["mean"][n] for b in out["training_side"].values()])) for n in names}
    out["chosen"] = max(names, key=lambda n: out["training_side_mean"][n])
    print("chosen on the training sides:", out["chosen"], flush=True)
    return out


def part_align_cv():
    """The training-side check of the query corrections: 3-fold CV of each TM training side with held-out folds
    unshifted and under the simulated technology shifts, logistic regression."""
    out = {"protocol": "shift_cv of this file (3 stratified folds; held-out folds as they are and after a simulated "
                       "technology shift: per-gene log-normal capture bias sd 0.7, depth x0.1 or x10, Poisson "
                       "resampling), logistic regression, macro-F1 averaged over folds", "tasks": {}}
    for name in ("tm_facs_to_droplet", "tm_droplet_to_facs"):
        A, B, classes = load(name)
        out["tasks"][name] = shift_cv(A, classes, feature_kinds=("base", "query_std", "nonzero_align"), models=("lr",))
        print(name, out["tasks"][name], flush=True)
    return out

# ---------------------------------------------------------------- driver
PARTS = {"accuracy": part_accuracy, "calibration": part_calibration, "loto": part_loto, "loto_default": part_loto_default,
         "scale": part_scale,
         "library": part_library, "query_scale": part_query_scale,
         "feature_ideas": part_feature_ideas, "loto_select": part_loto_select,
         "align_cv": part_align_cv}

def _smoke() -> None:
    "Shrink every input to 300 cells of one task (both directions for the TM parts), cached: seconds per part."
    import functools
    global load_task
    from _smoke import tiny
    full = load_task
    load_task = functools.lru_cache(None)(lambda name: tiny(full(name), 300, "label", per_value=10))
    for d, keep in ((TASKS, ("tm_facs_to_droplet", "tm_droplet_to_facs")), (ALL_TASKS, ("tm_facs_to_droplet",)),
                    (NOVELTY_TASKS, ("tm_facs_to_droplet",))):
        for k in [k for k in d if k not in keep]: del d[k]

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", nargs="*", choices=list(PARTS), help="parts to run (default all; with --smoke: scale align_cv)")
    ap.add_argument("--out", help=f"results file (default {OUT.name}; a temporary file with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="300 cells of the TM task only: checks that the script runs")
    args = ap.parse_args()
    parts = args.part or (["scale", "align_cv"] if args.smoke else list(PARTS))
    if args.smoke:
        from _smoke import smoke_out
        _smoke()
        OUT = smoke_out(args.out, OUT.name)
    elif args.out: OUT = Path(args.out)
    for p in parts:
        t = time.perf_counter()
        block = PARTS[p]()
        block["seconds"] = round(time.perf_counter() - t, 1)
        res = json.loads(OUT.read_text()) if OUT.exists() else {}     # re-read: parts may run side by side
        res[p] = block
        res["versions"] = _versions()
        OUT.write_text(_json(res))
        print(f"wrote {OUT} ({p})", flush=True)
