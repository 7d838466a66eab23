"""The query corrections of the Preprocessor on the public Tabula Muris tasks: trained on one technology, tested on
the other, with logistic regression (the quality study, benchmarks/quality.py --part query_scale, has every model)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score


def _macro_f1(data_dir, train, test, **pp_kw):
    from scaml.datasets import load_task
    from scaml.models import get_backend
    from scaml.preprocess import Preprocessor
    a = load_task("tm_facs_to_droplet", data_dir=data_dir)
    A, B = a[a.obs.split == train], a[a.obs.split == test]
    classes = sorted(set(A.obs.label.astype(str)))
    pp = Preprocessor(**{"n_top_genes": 2000, **pp_kw}).fit(A)    # the gene count these were measured with
    y = pd.Index(classes).get_indexer(A.obs.label.astype(str))
    m = get_backend("lr")(class_weight="balanced", random_state=0).fit(pp.transform(A), y, n_classes=len(classes))
    pred = np.asarray(classes)[m.predict_proba(pp.transform(B)).argmax(1)]
    return f1_score(B.obs.label.astype(str), pred, average="macro")


@pytest.mark.slow   # four logistic regressions on the Tabula Muris task: a few seconds on 2 cores
def test_query_corrections_help_logistic_regression_across_technologies(data_dir):
    base = _macro_f1(data_dir, "test", "train")                         # droplet -> FACS, measured 0.833
    aligned = _macro_f1(data_dir, "test", "train", align_query=True)     # measured 0.909
    standardised = _macro_f1(data_dir, "test", "train", scale_by="query")  # measured 0.917
    assert aligned > base + 0.05 and standardised > base + 0.05, (base, aligned, standardised)
    # FACS -> droplet: standardising each side by its own cells, measured 0.954 against 0.933
    assert _macro_f1(data_dir, "train", "test", scale_by="query") > 0.945
    # at the default 1,000 genes lr starts higher (0.926) and aligning still helps (0.946); standardising does not
    base, aligned = (_macro_f1(data_dir, "test", "train", n_top_genes=1000, **kw) for kw in ({}, {"align_query": True}))
    assert aligned > base + 0.01, (base, aligned)

def test_cli_query_correction_flags(cli, tmp_path):
    "--align-query and --scale-by reach the preprocessing and the manifest; the saved model applies them."
    out = tmp_path / "aligned"
    cli("scaml_train", "--dataset", "tm_facs_to_droplet", "--models", "lr", "--align-query", "--outdir", out,
        "--no-plots", "--quiet")
    man = json.loads((out / "manifest.json").read_text())
    assert man["query_correction"] == {"scale_by": "train", "align_query": True}
    pp = json.loads((out / "lr" / "model" / "preprocess.json").read_text())
    assert pp.get("align_query") is True
    p = cli("scaml_train", "--dataset", "tm_facs_to_droplet", "--models", "lr", "--align-query", "--scale-by", "query",
            "--outdir", tmp_path / "both", check=False)
    assert p.returncode == 1 and "both correct the query" in p.stderr
