"""The validation panel: every cross-batch task of the public data, every candidate default, and the rule that picks one.

Tasks (both directions each): Tabula Muris FACS <-> droplet (the five shared types), CellBench CEL-seq2 <-> Drop-seq
and plate 1 <-> plates 2-3 (singlets), Kang ctrl <-> stim and donor 101 <-> 107. Families: `tabula_muris`,
`cellbench`, `kang`. A candidate is a configuration: classifiers (model names and `run_benchmark` keyword arguments)
or a novelty score (NoveltyScorer components, shift removal and smoothing, or a `run_novelty` detector). Novelty is
measured by leave one type out on every task: each type with at least 20 test cells is removed from training and
its test cells are the positives.

A default changes only by leave-one-family-out (`lofo_rule`): for each family F, the candidate with the best mean on
the other families is scored on F against the current default; adopted when it gains on average over the held-out
families and loses at most 0.01 on every one.

Run (niced, minutes): SCAML_DATA_DIR=../shared/data nice python benchmarks/panel.py [--quick | --smoke] [--out FILE]
Some configurations only, added to the recorded ones: panel.py --part classifiers --configs singler knn --merge
(scanvi is not a panel configuration: minutes a task; benchmarks/scanvi.py measures it, benchmarks/scanvi.json).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):   # one thread per pool: small matrices,
    os.environ.setdefault(_v, "1")                                          # shared CPUs
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OUT = Path(__file__).with_name("panel.json")
TOL = 0.01

# ---------------------------------------------------------------------------------------------------------- the rule
def lofo_rule(scores: pd.DataFrame, default: str | Sequence[str], *, tol: float = TOL,
              candidates: Sequence[str] | None = None) -> dict:
    """Leave-one-family-out choice of a default.

    Parameters
    ----------
    scores
        Candidates x families (one number per candidate and family, higher is better; NaN where not measured).
    default
        The current default: a candidate name, or several names (a set, e.g. the default models): on each held-out
        family the set is represented by its member with the best mean on the other families.
    tol
        Largest loss allowed on any held-out family.
    candidates
        The rows that may be chosen (a candidate set, represented on each held-out family by its member with the best
        mean on the others, as the default set is); None: every row.

    Returns
    -------
    A dict: `folds` (per held-out family: the candidate chosen on the others, its score, the default's, the gain),
    `mean_gain`, `min_gain`, `adopt` (bool), `winner` (the candidate chosen on all families, adopted or not),
    `reason`, and `candidates` (every candidate's scores and mean).
    """
    if not isinstance(scores, pd.DataFrame) or scores.empty:
        raise ValueError("scores must be a non-empty DataFrame of candidates x families")
    members = [default] if isinstance(default, str) else list(default)
    missing = [m for m in members if m not in scores.index]
    if missing: raise KeyError(f"default {missing} is not a row of scores; rows: {list(scores.index)}")
    fams = list(scores.columns)
    if len(fams) < 2: raise ValueError(f"the rule needs at least two families; got {fams}")
    full = scores.dropna()                                  # only candidates measured on every family compete
    if candidates is not None:
        bad = [c for c in candidates if c not in scores.index]
        if bad: raise KeyError(f"candidates {bad} are not rows of scores; rows: {list(scores.index)}")
        full = full.loc[[c for c in full.index if c in set(candidates)]]
    if full.empty: raise ValueError("no candidate has a score on every family")
    folds = {}
    for f in fams:
        others = [g for g in fams if g != f]
        mean_o = full[others].mean(1)
        chosen = str(mean_o.idxmax())
        d = str(scores.loc[members, others].mean(1).idxmax())
        folds[f] = {"chosen": chosen, "chosen_mean_others": float(mean_o.max()), "chosen_score": float(full.loc[chosen, f]),
                    "default": d, "default_score": float(scores.loc[d, f]),
                    "gain": float(full.loc[chosen, f] - scores.loc[d, f])}
    gains = np.array([v["gain"] for v in folds.values()])
    mean_gain, min_gain = float(gains.mean()), float(gains.min())
    adopt = bool(mean_gain > 0 and min_gain >= -tol - 1e-9)
    winner = str(full.mean(1).idxmax())
    if winner in members: adopt = False
    if winner in members: reason = "the default itself is chosen on all families"
    elif adopt: reason = f"gains {mean_gain:+.3f} on average over held-out families, worst {min_gain:+.3f}"
    elif mean_gain <= 0: reason = f"no gain on average over held-out families ({mean_gain:+.3f})"
    else: reason = f"loses {-min_gain:.3f} > {tol} on a held-out family"
    cands = {str(c): {"by_family": {f: (None if pd.isna(v) else float(v)) for f, v in r.items()},
                      "mean": (None if r.isna().any() else float(r.mean()))} for c, r in scores.iterrows()}
    return {"folds": folds, "mean_gain": mean_gain, "min_gain": min_gain, "adopt": adopt, "winner": winner,
            "default": members, "tol": tol, "reason": reason, "candidates": cands}

# --------------------------------------------------------------------------------------------------------- the tasks
def _task(train, test, label: str):
    import anndata
    genes = train.var_names.intersection(test.var_names)
    a = anndata.concat([train[:, genes], test[:, genes]], label="split", keys=["train", "test"], index_unique=None)
    a.obs["label"] = a.obs[label].astype(str).values
    a.obs = a.obs[["label", "split"]].copy()
    return a

def _read(data_dir: Path, rel: str):
    import anndata
    p = data_dir / rel
    if not p.exists(): raise FileNotFoundError(f"{p} is missing; set SCAML_DATA_DIR to the shared data folder")
    return anndata.read_h5ad(p)

def build_tasks(data_dir: Path) -> dict[str, dict]:
    """Every cross-batch task of `data_dir`: {name: {'family', 'description', 'adata'}}."""
    tasks = {}
    def add(name, family, desc, tr, te, label):
        tasks[name] = {"family": family, "description": desc, "adata": _task(tr, te, label)}
    facs = _read(data_dir, "deepchem_actinn_tm_facs/deepchem_actinn_tm_facs.h5ad")
    drop = _read(data_dir, "actinn_tm_droplet/actinn_tm_droplet.h5ad")
    facs = facs[facs.obs.cell_type.isin(set(drop.obs.cell_type))]
    add("tm_facs_to_droplet", "tabula_muris", "Smart-seq2 -> 10x droplet, 5 shared types", facs, drop, "cell_type")
    add("tm_droplet_to_facs", "tabula_muris", "10x droplet -> Smart-seq2, 5 shared types", drop, facs, "cell_type")
    cb = _read(data_dir, "cellbench_lung_celllines/cellbench_plate_based.h5ad")
    cb = cb[cb.obs.demuxlet_cls == "SNG"]
    b = cb.obs.batch
    cel, dro = cb[b == "sc_celseq2"], cb[b == "sc_dropseq"]
    p1, p23 = cb[b == "sc_celseq2_5cl_p1"], cb[b.isin(["sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3"])]
    add("cellbench_celseq2_to_dropseq", "cellbench", "CEL-seq2 -> Drop-seq, 3 cell lines", cel, dro, "cell_line")
    add("cellbench_dropseq_to_celseq2", "cellbench", "Drop-seq -> CEL-seq2, 3 cell lines", dro, cel, "cell_line")
    add("cellbench_plate1_to_plates23", "cellbench", "CEL-seq2 plate 1 -> plates 2-3, 5 cell lines", p1, p23, "cell_line")
    add("cellbench_plates23_to_plate1", "cellbench", "CEL-seq2 plates 2-3 -> plate 1, 5 cell lines", p23, p1, "cell_line")
    kang = _read(data_dir, "muscat_kang_ifnb/muscat_kang_ifnb.h5ad")
    kb, kd = kang.obs.batch.astype(str), kang.obs.donor.astype(str)
    add("kang_ctrl_to_stim", "kang", "PBMC untreated -> IFN-beta stimulated", kang[kb == "ctrl"], kang[kb == "stim"], "label")
    add("kang_stim_to_ctrl", "kang", "PBMC IFN-beta stimulated -> untreated", kang[kb == "stim"], kang[kb == "ctrl"], "label")
    add("kang_101_to_107", "kang", "PBMC donor 101 -> donor 107 (ctrl and stim)", kang[kd == "101"], kang[kd == "107"], "label")
    add("kang_107_to_101", "kang", "PBMC donor 107 -> donor 101 (ctrl and stim)", kang[kd == "107"], kang[kd == "101"], "label")
    return tasks

EXCLUDED = {"scanpy_pbmc68k_reduced": "one donor, no batch, no counts (scaled HVG values): no cross-batch task",
            "deepchem_actinn_tm_facs train/test": "a random split of one experiment, not a batch",
            "cellbench_10x_3cl": "894 genes under symbols; not built into the panel in this version"}

# ------------------------------------------------------------------------------------------------------- candidates
DEFAULT_MODELS = ("lr", "rf", "xgb", "mlp")
CLASSIFIER_CONFIGS: dict[str, dict] = {
    "default": {"models": DEFAULT_MODELS, "kwargs": {"ensemble": True}},
    "hvg1000": {"models": DEFAULT_MODELS, "kwargs": {"n_top_genes": 1000}},
    "hvg5000": {"models": DEFAULT_MODELS, "kwargs": {"n_top_genes": 5000}},
    "all_genes": {"models": DEFAULT_MODELS, "kwargs": {"features": "all"}},
    "align_query": {"models": DEFAULT_MODELS, "kwargs": {"align_query": True}},
    "scale_by_query": {"models": DEFAULT_MODELS, "kwargs": {"scale_by": "query"}},
    "calibrated": {"models": DEFAULT_MODELS, "kwargs": {"calibrate": "temperature", "ensemble": True}},
    # a temperature on rf's out-of-bag cells (no refit; lr, xgb, mlp as they are), alone and with the settings that
    # passed the rule: the candidate default set, measured together
    "calibrated_oob": {"models": DEFAULT_MODELS, "kwargs": {"calibrate": "oob", "ensemble": True}},
    "hvg1000_oob": {"models": DEFAULT_MODELS, "kwargs": {"n_top_genes": 1000, "calibrate": "oob", "ensemble": True}},
    "hvg1000_align_oob": {"models": DEFAULT_MODELS,
                          "kwargs": {"n_top_genes": 1000, "align_query": True, "calibrate": "oob", "ensemble": True}},
    # models that travel (scaml.travel); scanvi is measured by benchmarks/scanvi.py (minutes a task), not here
    "singler": {"models": ("singler",), "kwargs": {}},
    "knn": {"models": ("knn",), "kwargs": {}},
    "majority_vote": {"models": ("lr", "singler"), "kwargs": {"majority_vote": True}},   # lr+vote, singler+vote
}
# single models and model sets (rows 'configuration:model') against the default set, each set represented on a
# held-out family by its member with the best mean on the other families
CLASSIFIER_SETS: dict[str, list[str]] = {
    "singler": ["singler:singler"],
    "knn": ["knn:knn"],
    "singler+vote": ["majority_vote:singler+vote"],
    "lr+vote": ["majority_vote:lr+vote"],
    "lr_hvg1000+singler": ["hvg1000:lr", "singler:singler"],
    "default+singler": [f"default:{m}" for m in DEFAULT_MODELS] + ["singler:singler"],
}
# novelty: NoveltyScorer components (+ shift, smoothing), or a run_novelty detector
NOVELTY_COMPONENTS = ("maxproba", "maha", "maha_logits", "maha_type", "knn", "residual")
NOVELTY_CONFIGS: dict[str, dict] = {
    "combined": {"components": ("maxproba", "maha_logits"), "shift": None, "smooth": 30},
    "maxproba": {"components": ("maxproba",), "shift": None, "smooth": 0},
    "lof": {"method": "lof"},
    "knn": {"components": ("knn",), "shift": None, "smooth": 30},
    "maha_type": {"components": ("maha_type",), "shift": None, "smooth": 30},
    "maha": {"components": ("maha",), "shift": None, "smooth": 30},
    "combined+knn": {"components": ("maxproba", "maha_logits", "knn"), "shift": None, "smooth": 30},
    "maha+residual": {"components": ("maha", "residual"), "shift": None, "smooth": 30},
    "combined+maha": {"components": ("maxproba", "maha_logits", "maha"), "shift": None, "smooth": 30},
}
for _s in ("mean", "matched", "median", "per_type"):
    for _n, _c in (("combined", ("maxproba", "maha_logits")), ("knn", ("knn",)), ("maha_type", ("maha_type",)),
                   ("maha", ("maha",)), ("combined+knn", ("maxproba", "maha_logits", "knn")),
                   ("combined+maha_type", ("maxproba", "maha_logits", "maha_type")),
                   ("maha+residual", ("maha", "residual")), ("combined+maha", ("maxproba", "maha_logits", "maha")),
                   ("combined+maha+residual", ("maxproba", "maha_logits", "maha", "residual"))):
        NOVELTY_CONFIGS[f"{_n}@{_s}"] = {"components": _c, "shift": _s, "smooth": 30}
NOVELTY_CONFIGS.update({
    "corr_gap": {"components": ("corr_gap",), "shift": None, "smooth": 30},
    "corr_gap/unsmoothed": {"components": ("corr_gap",), "shift": None, "smooth": 0},
    "combined+corr_gap": {"components": ("maxproba", "maha_logits", "corr_gap"), "shift": None, "smooth": 30},
})
# each component's quantile among the held-out training cells *assigned to the same type* (by the scorer's classifier)
# instead of among all of them: a type the classifier always finds hard (CD4 against CD8 T cells) no longer looks new,
# and a new type assigned to a known one is judged against that type's own held-out cells
for _n, _c in (("combined", ("maxproba", "maha_logits")), ("combined+maha", ("maxproba", "maha_logits", "maha")),
               ("maha", ("maha",)), ("combined+maha_type", ("maxproba", "maha_logits", "maha_type")),
               ("combined+maha+residual", ("maxproba", "maha_logits", "maha", "residual")),
               ("maha+residual", ("maha", "residual"))):
    for _s in (None, "matched", "mean", "per_type", "median"):
        NOVELTY_CONFIGS[f"{_n}{'@' + _s if _s else ''}/per_class"] = {"components": _c, "shift": _s, "smooth": 30,
                                                                      "per_class": True}
for _n, _c in (("residual", ("residual",)), ("maxproba+residual", ("maxproba", "residual")),   # with the median shift
               ("combined+residual", ("maxproba", "maha_logits", "residual")),
               ("combined+maha_type+residual", ("maxproba", "maha_logits", "maha_type", "residual"))):
    NOVELTY_CONFIGS[f"{_n}@median/per_class"] = {"components": _c, "shift": "median", "smooth": 30, "per_class": True}
for _k in (15, 50):                                  # how many query neighbours the score is averaged over
    NOVELTY_CONFIGS[f"combined+maha+residual@matched/per_class/smooth{_k}"] = {
        "components": ("maxproba", "maha_logits", "maha", "residual"), "shift": "matched", "smooth": _k,
        "per_class": True}
# the default the rule compares against: scaml 0.3's score (decisions["novelty"] is the choice that replaced it)
NOVELTY_BASELINE = "combined"
# scaml's default score since 0.4, scaml.ood.TypeNoveltyScorer() (run_novelty / scaml_novelty method "typed")
NOVELTY_DEFAULT = "combined+maha_type+residual@median/per_class"
NOVELTY_SINGLES = ("corr_gap", "corr_gap/unsmoothed", "combined+corr_gap",    # each alone against the default
                   "combined/per_class", "combined@matched/per_class", "combined+maha+residual@matched/per_class",
                   NOVELTY_DEFAULT)

class CorrGapScore:
    """The reference-correlation classifier's margin as a novelty score (the NoveltyScorer component interface:
    `fit(Z, y)`, `score(Z)`, higher = more novel): minus the gap between each cell's best and second-best first-round
    Spearman correlation with the training types' profiles (`scaml.travel.CorrelationBackend`, no fine-tuning); with
    the `Preprocessor` that made `Z`, on log-expression (the scaling undone), as the `singler` model correlates."""
    def __init__(self, random_state: int | None = 0, preprocessor=None):
        self.random_state, self.preprocessor = random_state, preprocessor
    def fit(self, Z, y) -> CorrGapScore:
        from scaml.travel import CorrelationBackend
        b = CorrelationBackend(fine_tune=False, random_state=self.random_state)
        if self.preprocessor is not None: b.set_preprocessor(self.preprocessor)
        self.backend_ = b.fit(Z, y, n_classes=int(np.max(y)) + 1)
        return self
    def score(self, Z) -> np.ndarray:
        S = np.sort(self.backend_.scores(Z)[0], axis=1)
        return -(S[:, -1] - S[:, -2])

EXTRA_COMPONENTS = {"corr_gap": CorrGapScore}       # components outside scaml.ood, scored without a shift

def class_quantiles(ref: Mapping[str, np.ndarray], ref_cls: np.ndarray, scores: Mapping[str, np.ndarray],
                    cls: np.ndarray, *, min_cells: int = 20) -> dict[str, np.ndarray]:
    """Each score as its quantile (mid-rank) among the reference cells of the class each cell is assigned to (`ref_cls`,
    `cls`); the pooled reference for a class with fewer than `min_cells` reference cells. Beyond a reference's largest
    value the order is kept by the distance past it (as `ScoreCombiner.quantiles`)."""
    out = {}
    for k, r in ref.items():
        r, s = np.asarray(r, np.float64), np.asarray(scores[k], np.float64)
        q = np.empty(len(s))
        for c in np.unique(cls):
            rc = np.sort(r[ref_cls == c]) if (ref_cls == c).sum() >= min_cells else np.sort(r)
            sel = cls == c
            lo, hi = np.searchsorted(rc, s[sel], "left"), np.searchsorted(rc, s[sel], "right")
            span = max(rc[-1] - rc[0], 1e-12)
            q[sel] = np.where(s[sel] > rc[-1], 1 + (s[sel] - rc[-1]) / span, (lo + hi) / (2 * len(rc)))
        out[k] = q
    return out

# ------------------------------------------------------------------------------------------------------ classifiers
def run_classifiers(adata, configs: Mapping[str, dict], *, n_boot: int = 200) -> dict:
    "Each configuration's models on one task: macro-F1 with its interval, accuracy, ECE, wall time."
    from scaml.benchmark import run_benchmark
    out = {}
    for cname, cfg in configs.items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_benchmark(adata, label_key="label", split_key="split", train="train", test="test",
                                models=list(cfg["models"]), progress=False, plots=False, save_models=False,
                                n_threads=1, **cfg["kwargs"])
        wall = time.perf_counter() - t
        tim = res.manifest["timings"]
        per = {}
        for m, r in res.metrics.items():
            ci = r["ci"]["f1_macro"]
            per[m] = {"f1_macro": float(r["f1_macro"]), "f1_lo": float(ci["lo"]), "f1_hi": float(ci["hi"]),
                      "accuracy": float(r["accuracy"]), "ece": float(r["ece"]),
                      "ece_uncalibrated": float(r.get("ece_uncalibrated", r["ece"])),
                      "seconds": float(sum(v for k, v in tim.items() if k.startswith(f"{m}_")))}
        out[cname] = {"wall_s": wall, "models": per}
        print(f"  {cname}: " + ", ".join(f"{m} {v['f1_macro']:.3f}" for m, v in per.items()) + f" ({wall:.0f} s)",
              flush=True)
    return out

def time_pairs(tasks: Mapping[str, dict], base: str, cand: str, *, repeats: int = 3) -> dict:
    """Wall time of configuration `cand` over `base` on each task, the two run alternately `repeats` times in this
    process (so a busy machine slows both alike): per task the median ratio of each pair, and the seconds."""
    out = {}
    for n, t in tasks.items():
        secs: dict[str, list] = {base: [], cand: []}
        for _ in range(repeats):
            for c in (base, cand):
                secs[c].append(run_classifiers(t["adata"], {c: CLASSIFIER_CONFIGS[c]}, n_boot=200)[c]["wall_s"])
        r = [b / a for a, b in zip(secs[base], secs[cand])]
        out[n] = {"median_ratio": float(np.median(r)), "ratios": r, "seconds": secs}
    rs = [v["median_ratio"] for v in out.values()]
    return {"base": base, "candidate": cand, "repeats": repeats, "tasks": out,
            "median_ratio": {"min": min(rs), "max": max(rs), "mean": float(np.mean(rs))}}

# ---------------------------------------------------------------------------------------------------------- novelty
def _auroc(pos, s) -> float:
    "AUROC from ranks (Mann-Whitney; ties get average ranks): the value of sklearn's roc_auc_score, faster."
    from scipy.stats import rankdata
    pos = np.asarray(pos, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((rankdata(s)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))

def run_novelty_loto(adata, configs: Mapping[str, dict], *, min_test_cells: int = 20, n_boot: int = 100,
                     random_state: int = 0) -> dict:
    """Leave one type out on one task for every novelty configuration, from one fit per type and shift setting:
    a NoveltyScorer with all the components gives each component's scores, and any subset is combined on the same
    held-out training reference (as a NoveltyScorer of that subset would)."""
    from scaml.novelty import run_novelty
    from sklearn.model_selection import StratifiedKFold
    from scaml.ood import NoveltyScorer, ScoreCombiner, query_neighbors
    from scaml.preprocess import Preprocessor
    lab = adata.obs["label"].astype(str).to_numpy()
    tr, te = np.flatnonzero(adata.obs.split == "train"), np.flatnonzero(adata.obs.split == "test")
    types = [t for t in sorted(set(lab[tr])) if (lab[te] == t).sum() >= min_test_cells and len(set(lab[tr]) - {t}) >= 2]
    scores: dict[str, dict[str, np.ndarray]] = {c: {} for c in configs}
    secs = {c: 0.0 for c in configs}
    shifts = sorted({cfg.get("shift") for cfg in configs.values() if "components" in cfg}, key=str)
    needed = {c for cfg in configs.values() for c in cfg.get("components", ())}
    bad = sorted(needed - set(NOVELTY_COMPONENTS) - set(EXTRA_COMPONENTS))
    if bad: raise ValueError(f"unknown novelty components {bad}; choose from {NOVELTY_COMPONENTS + tuple(EXTRA_COMPONENTS)}")
    if any(cfg.get("shift") is not None and set(cfg["components"]) & set(EXTRA_COMPONENTS) for cfg in configs.values()
           if "components" in cfg):
        raise ValueError(f"the components {list(EXTRA_COMPONENTS)} are scored without a shift (shift=None)")
    ns_comps = tuple(c for c in NOVELTY_COMPONENTS if c in needed)
    extra = tuple(c for c in EXTRA_COMPONENTS if c in needed)
    shifted = any(sh is not None for sh in shifts)
    # only the components the configurations use (each is fitted on its own: the subset changes no score)
    ns = (NoveltyScorer(ns_comps, shift="matched", smooth=0, random_state=random_state)
          if ns_comps or shifted else None)

    def fit_all(Zf, yf, pp):
        out = {c: EXTRA_COMPONENTS[c](random_state=random_state, preprocessor=pp).fit(Zf, yf) for c in extra}
        if ns is not None: out["ns"] = ns._fit_all(Zf, yf)
        return out

    def assigned(f, Zs, sh):
        "The type the scorer's classifier assigns each cell to, on the cells as its components see them."
        from scaml.ood import _dense, query_shift
        if sh is not None: Zs = _dense(Zs) - query_shift(Zs, f["ns"]["shift"], how=sh)
        return f["ns"]["classifier"].predict_proba(Zs).argmax(1)

    def score_all(f, Zs, sh):
        out = {}
        if ns is not None: out.update(ns._scores(f["ns"], Zs))
        if sh is None: out.update({c: f[c].score(Zs) for c in extra})
        return out
    for t in types:
        fit_idx = tr[lab[tr] != t]
        classes = sorted(set(lab[fit_idx]))
        t0 = time.perf_counter()
        pp = Preprocessor(n_top_genes=2000)
        Z = pp.fit_transform(adata[fit_idx])
        Zt = pp.transform(adata[te])
        nbrs = query_neighbors(Zt, max([30] + [cfg.get("smooth", 0) for cfg in configs.values()]),
                               random_state=random_state)
        t_pp = time.perf_counter() - t0
        # NoveltyScorer.fit for every shift setting at once: the fitted parts do not depend on the setting (the
        # 'matched' fit holds the classifier and training means the others ignore), only the scoring does; each
        # setting gets its own reference from the held-out folds, exactly as NoveltyScorer(shift=...).fit makes it
        t0 = time.perf_counter()
        y = np.searchsorted(classes, lab[fit_idx])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kf = StratifiedKFold(2, shuffle=True, random_state=random_state).split(np.zeros(len(y)), y)
            parts = [(fit_all(Z[i], y[i], pp), j) for i, j in kf if len(np.unique(y[i])) >= 2]
            full = fit_all(Z, y, pp)
        t_fit = time.perf_counter() - t0
        for sh in shifts:
            t0 = time.perf_counter()
            if ns is not None: ns.shift = sh
            ref, ref_cls = {}, []
            pc = any(cfg.get("per_class") and cfg.get("shift") == sh for cfg in configs.values())
            for f, j in parts:
                for k, v in score_all(f, Z[j], sh).items(): ref.setdefault(k, []).append(v)
                if pc: ref_cls.append(assigned(f, Z[j], sh))
            ref = {k: np.concatenate(v) for k, v in ref.items()}
            comb = ScoreCombiner().fit(ref)
            St = score_all(full, Zt, sh)
            Q = comb.quantiles(St)
            Qc = class_quantiles(ref, np.concatenate(ref_cls), St, assigned(full, Zt, sh)) if pc else None
            dt = time.perf_counter() - t0 + t_pp + t_fit
            for c, cfg in configs.items():
                if "components" not in cfg or cfg.get("shift") != sh: continue
                s = np.mean([(Qc if cfg.get("per_class") else Q)[k] for k in cfg["components"]], 0)
                if cfg.get("smooth", 0) > 1: s = s[nbrs[:, :cfg["smooth"]]].mean(1)
                scores[c][t] = s
                secs[c] += dt           # the shared fit charged in full to each configuration (an upper bound)
        for c, cfg in configs.items():
            if "method" not in cfg: continue
            t0 = time.perf_counter()
            a = adata.copy()
            a.obs["novel"] = lab == t
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = run_novelty(a, flag_key="novel", positive=True, method=cfg["method"], split_key="split",
                                train="train", test="test", n_top_genes=2000, random_state=random_state)
            scores[c][t] = r.scores.loc[adata.obs_names[te], "score"].to_numpy()
            secs[c] += time.perf_counter() - t0
    te_lab = lab[te]
    rng = np.random.default_rng(random_state)
    boots = [rng.integers(0, len(te), len(te)) for _ in range(n_boot)]
    out = {}
    for c in configs:
        per = {t: _auroc(te_lab == t, s) for t, s in scores[c].items()}
        bm = []
        for i in boots:
            v = [_auroc(te_lab[i] == t, s[i]) for t, s in scores[c].items() if 0 < (te_lab[i] == t).sum() < len(i)]
            if v: bm.append(np.mean(v))
        out[c] = {"per_type": per, "mean": float(np.mean(list(per.values()))), "min": float(min(per.values())),
                  "mean_lo": float(np.percentile(bm, 2.5)) if bm else None,
                  "mean_hi": float(np.percentile(bm, 97.5)) if bm else None, "seconds": secs[c]}
    print("  novelty: " + ", ".join(f"{c} {v['mean']:.3f}" for c, v in out.items()), flush=True)
    return out

# ------------------------------------------------------------------------------------------------------- assembling
def family_table(per_task: Mapping[str, Mapping[str, float]], families: Mapping[str, str]) -> pd.DataFrame:
    "Candidates x families: the mean over each family's tasks of {task: {candidate: score}}."
    rows = pd.DataFrame(per_task).T                     # tasks x candidates
    rows["family"] = [families[t] for t in rows.index]
    return rows.groupby("family").mean().T

def decide(results: dict) -> dict:
    "Apply the rule to every question the panel asks; the families come from the tasks that were run."
    fam = {t: r["family"] for t, r in results["tasks"].items()}
    dec = {}
    # 1. single classifiers: every (configuration, model) against the default model set
    f1 = {t: {f"{c}:{m}": v["f1_macro"] for c, cr in r["classifiers"].items() for m, v in cr["models"].items()}
          for t, r in results["tasks"].items() if "classifiers" in r}
    tab = family_table(f1, fam) if f1 and len(set(fam[t] for t in f1)) >= 2 else None
    default = [] if tab is None else [f"default:{m}" for m in DEFAULT_MODELS if f"default:{m}" in tab.index]
    if default:                                     # (without the default models there is nothing to compare with)
        dec["classifier"] = lofo_rule(tab, default)
        # 2. settings: each configuration's mean over the default models, against today's settings
        st = {t: {c: float(np.mean([cr["models"][m]["f1_macro"] for m in DEFAULT_MODELS]))
                  for c, cr in r["classifiers"].items() if set(DEFAULT_MODELS) <= set(cr["models"])}
              for t, r in results["tasks"].items() if "classifiers" in r}
        dec["settings"] = lofo_rule(family_table(st, fam), "default")
        # 3. model sets against the default set, and against lr alone (the model the default set is represented by
        # on most families)
        for q, members in CLASSIFIER_SETS.items():
            if all(m in tab.index for m in members):
                dec[f"set:{q}"] = lofo_rule(tab.loc[list(dict.fromkeys(default + members))], default, candidates=members)
                if "default:lr" in tab.index and not set(members) & set(default):
                    dec[f"set_vs_lr:{q}"] = lofo_rule(tab.loc[list(dict.fromkeys(["default:lr"] + members))],
                                                      "default:lr", candidates=members)
    nov = {t: {c: v["mean"] for c, v in r["novelty"].items()} for t, r in results["tasks"].items() if "novelty" in r}
    if nov and len(set(fam[t] for t in nov)) >= 2 and NOVELTY_BASELINE in family_table(nov, fam).index:
        ntab = family_table(nov, fam)
        dec["novelty"] = lofo_rule(ntab, NOVELTY_BASELINE)
        for c in NOVELTY_SINGLES:                   # one candidate at a time against the baseline score
            if c in ntab.index and NOVELTY_BASELINE in ntab.index:
                dec[f"novelty:{c}"] = lofo_rule(ntab.loc[[NOVELTY_BASELINE, c]], NOVELTY_BASELINE, candidates=[c])
        mins = {t: {c: v["min"] for c, v in r["novelty"].items()} for t, r in results["tasks"].items() if "novelty" in r}
        mt = pd.DataFrame(mins).T
        mt["family"] = [fam[t] for t in mt.index]
        dec["novelty"]["min_type_auroc"] = mt.groupby("family").min().T.to_dict(orient="index")
    return dec

def calibration_summary(results: dict, candidate: str = "calibrated") -> dict:
    """Calibrated (configuration `candidate`) against today's run: accuracy, macro-F1, ECE per default model and task,
    and the wall-time ratio (the soft vote is left out: its members' calibration changes what it predicts)."""
    out = {}
    for t, r in results["tasks"].items():
        c = r.get("classifiers", {})
        if "default" not in c or candidate not in c: continue
        d, k = c["default"], c[candidate]
        tpt = results.get("timing", {}).get(f"{candidate}/default", {}).get("tasks", {}).get(t)
        out[t] = {"time_ratio": tpt["median_ratio"] if tpt else k["wall_s"] / d["wall_s"],
                  "time_ratio_measured": "alternating runs" if tpt else "one run each",
                  "models": {m: {"accuracy": [d["models"][m]["accuracy"], k["models"][m]["accuracy"]],
                                 "f1_macro": [d["models"][m]["f1_macro"], k["models"][m]["f1_macro"]],
                                 "ece": [d["models"][m]["ece"], k["models"][m]["ece"]]}
                             for m in d["models"] if m in k["models"] and m in DEFAULT_MODELS}}
    if not out: return out
    ratios = [v["time_ratio"] for v in out.values()]
    tp = results.get("timing", {}).get(f"{candidate}/default")    # measured alternately (--time-pairs): preferred
    timing = "one run of each configuration per task, one after the other"
    if tp and set(tp["tasks"]) >= set(out):
        ratios = [v["median_ratio"] for v in tp["tasks"].values()]
        timing = (f"median of {tp['repeats']} alternating runs per task on {len(ratios)} tasks "
                  f"(--time-pairs default {candidate})")
    dacc = max(abs(m["accuracy"][1] - m["accuracy"][0]) for v in out.values() for m in v["models"].values())
    ece = {k: float(np.mean([m["ece"][k] for v in out.values() for m in v["models"].values()])) for k in (0, 1)}
    ok = bool(dacc <= 0.001 and ece[1] < ece[0] and max(ratios) <= 1.5)
    why = (f"largest accuracy change {dacc:.4f}; mean ECE {ece[0]:.3f} -> {ece[1]:.3f}; wall time x{min(ratios):.2f} to "
           f"x{max(ratios):.2f} of today's run (limit 1.5)")
    tm = {m: max(v["models"][m]["ece"][1] for t, v in out.items() if results["tasks"][t]["family"] == "tabula_muris")
          for m in DEFAULT_MODELS if any(results["tasks"][t]["family"] == "tabula_muris" for t in out)}
    return {"tasks": out, "max_accuracy_change": dacc, "mean_ece": [ece[0], ece[1]], "max_ece_tabula_muris": tm,
            "time_ratio": {"min": min(ratios), "max": max(ratios), "mean": float(np.mean(ratios)), "measured": timing},
            "adopt": ok, "reason": why}

def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT, help="JSON file to write (default benchmarks/panel.json)")
    p.add_argument("--quick", action="store_true", help="one small task, one classifier, two novelty scores (a smoke test)")
    p.add_argument("--smoke", action="store_true", help="--quick, written to --out or else a temporary file (never "
                                                        "over benchmarks/panel.json): checks that the script runs")
    p.add_argument("--tasks", nargs="*", help="only these tasks")
    p.add_argument("--part", choices=("all", "classifiers", "novelty", "none"), default="all")
    p.add_argument("--merge", action="store_true", help="update an existing --out file with the parts run now")
    p.add_argument("--merge-from", type=Path, nargs="*", default=[],
                   help="panel JSON files whose task results are merged in (parts run elsewhere) before deciding")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--configs", nargs="*", help="only these classifier / novelty configurations (with --merge the others "
                                                  "keep their recorded results)")
    p.add_argument("--time-pairs", nargs=2, metavar=("BASE", "CANDIDATE"),
                   help="only time CANDIDATE against BASE (classifier configurations), alternating three times per "
                        "task, and record it under 'timing' in --out (with --merge)")
    a = p.parse_args(argv)
    if a.smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _smoke import smoke_out
        a.quick, a.out = True, smoke_out(None if a.out == OUT else str(a.out), OUT.name)
    if a.out.exists() and not (a.overwrite or a.merge):
        print(f"error: {a.out} exists; pass --overwrite to replace it or --merge to update it", file=sys.stderr)
        return 2
    data_dir = Path(os.environ.get("SCAML_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    tasks = build_tasks(data_dir)
    names = list(tasks)
    cls_cfg, nov_cfg = dict(CLASSIFIER_CONFIGS), dict(NOVELTY_CONFIGS)
    if a.quick:
        names = ["cellbench_celseq2_to_dropseq"]
        cls_cfg = {"default": {"models": ("lr",), "kwargs": {}}}
        nov_cfg = {k: NOVELTY_CONFIGS[k] for k in ("combined", "knn@matched", NOVELTY_DEFAULT)}
    if a.configs:
        bad = sorted(set(a.configs) - set(cls_cfg) - set(nov_cfg))
        if bad:
            print(f"error: unknown configurations {bad}; classifiers: {list(cls_cfg)}; novelty: {list(nov_cfg)}",
                  file=sys.stderr); return 2
        cls_cfg = {k: v for k, v in cls_cfg.items() if k in a.configs}
        nov_cfg = {k: v for k, v in nov_cfg.items() if k in a.configs}
    if a.tasks:
        bad = sorted(set(a.tasks) - set(tasks))
        if bad: print(f"error: unknown tasks {bad}; choose from {list(tasks)}", file=sys.stderr); return 2
        names = list(a.tasks)
    results = json.loads(a.out.read_text()) if a.merge and a.out.exists() else {"tasks": {}}
    from scaml.core import package_versions
    t_all = time.perf_counter()
    merged_cmds = []
    for f in a.merge_from:
        other = json.loads(Path(f).read_text())
        merged_cmds += other.get("protocol", {}).get("commands", [])      # how the merged parts were run
        results.setdefault("timing", {}).update(other.get("timing", {}))
        for n, r in other["tasks"].items():
            mine = results["tasks"].setdefault(n, {})
            for k, v in r.items():                  # configurations merged one by one: the others stay recorded
                if k in ("classifiers", "novelty"): mine.setdefault(k, {}).update(v)
                else: mine[k] = v
    if a.time_pairs:
        bad = [c for c in a.time_pairs if c not in CLASSIFIER_CONFIGS]
        if bad: print(f"error: unknown classifier configurations {bad}", file=sys.stderr); return 2
        tp = time_pairs({n: tasks[n] for n in names}, *a.time_pairs)
        old_tp = results.setdefault("timing", {}).get(f"{a.time_pairs[1]}/{a.time_pairs[0]}")
        if old_tp:                                   # tasks timed before stay recorded; those timed now replace theirs
            tp["tasks"] = {**old_tp["tasks"], **tp["tasks"]}
            rs = [v["median_ratio"] for v in tp["tasks"].values()]
            tp["median_ratio"] = {"min": min(rs), "max": max(rs), "mean": float(np.mean(rs))}
        results["timing"][f"{a.time_pairs[1]}/{a.time_pairs[0]}"] = tp
        print(f"  {a.time_pairs[1]} / {a.time_pairs[0]}: median ratio per task " +
              ", ".join(f"{n} x{v['median_ratio']:.2f}" for n, v in tp["tasks"].items()), flush=True)
        names = []
    if a.part == "none": names = []
    for n in names:
        task = tasks[n]
        ad_ = task["adata"]
        print(n, ad_.shape, flush=True)
        r = results["tasks"].setdefault(n, {})
        r.update(family=task["family"], description=task["description"], n_train=int((ad_.obs.split == "train").sum()),
                 n_test=int((ad_.obs.split == "test").sum()), n_genes=int(ad_.n_vars),
                 n_types=int(ad_.obs.label[ad_.obs.split == "train"].nunique()))
        if a.part in ("all", "classifiers") and cls_cfg:
            r.setdefault("classifiers", {}).update(run_classifiers(ad_, cls_cfg))
        if a.part in ("all", "novelty") and nov_cfg:
            r.setdefault("novelty", {}).update(run_novelty_loto(ad_, nov_cfg))
    old = results.get("protocol", {}) if a.merge else {}          # configurations recorded by earlier runs
    results["protocol"] = {
        "families": {n: t["family"] for n, t in tasks.items()}, "excluded": EXCLUDED,
        "classifier_configs": {**old.get("classifier_configs", {}),
                               **{k: {"models": list(v["models"]), "kwargs": v["kwargs"]} for k, v in cls_cfg.items()}},
        "classifier_sets": CLASSIFIER_SETS,
        "novelty_configs": {**old.get("novelty_configs", {}),
                            **{k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()}
                               for k, v in nov_cfg.items()}},
        "novelty_baseline": NOVELTY_BASELINE, "novelty_default": NOVELTY_DEFAULT, "rule": f"leave-one-family-out, tol {TOL}",
        "macro_f1_interval": "95% bootstrap of the test cells (scaml.metrics.ci_for_benchmark, 200 resamples)",
        "novelty_protocol": "leave one type out of training (types with >= 20 test cells), test side scored as one "
                            "batch; mean AUROC over types with a 95% bootstrap interval of the test cells",
        "quick": a.quick, "commands": sorted(set(results.get("protocol", {}).get("commands", []) + merged_cmds +
                                                     [" ".join(["panel.py"] + [Path(x).name if x.startswith("/") else x
                                                                    for x in (argv or sys.argv[1:])])]))}
    results["decisions"] = decide(results)
    results["calibration"] = calibration_summary(results)
    results["calibration_oob"] = calibration_summary(results, "calibrated_oob")
    results["versions"] = package_versions()
    results["seconds_this_run"] = time.perf_counter() - t_all
    a.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print("wrote", a.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
