"""The original SCAML README's command lines, word for word, with scaml's console scripts in place of
`python SCAML/scaml_<x>.py`, on a microglia-like file built from public data.

The file: the singlets of CellBench's three 5-cell-line CEL-seq2 plates (sc_mixology) without H838, with the original's
column names: `label_ref` (cell line), `harvest` (H4 = plate 1, H8 = plates 2-3), `culture` (the plate),
`is_hek` ("true" for the A549 cells, the cells no training label covers, "false" otherwise) and `obsm['X_harmony']`
(20 components of the log-normalised expression, standing in for a Harmony embedding).
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


# the original README's commands, `python SCAML/scaml_<x>.py` replaced by the console script scaml_<x>
COMMANDS = [
    "scaml_train --adata microglia.h5ad --label-key label_ref --split-key harvest --split-train H4 --split-test H8 "
    "--features hvg --n-hvg 3000 --models lr rf xgb mlp --outdir results/H4_to_H8",
    "scaml_train --adata microglia.h5ad --label-key label_ref --split-key harvest --split-train H8 --split-test H4 "
    "--features raw --models lr --outdir results/H8_to_H4_raw",
    "scaml_train --adata microglia.h5ad --label-key label_ref --split-key harvest --split-train H4 --split-test H8 "
    "--embedding X_harmony --models lr mlp --outdir results/H4_to_H8_harmony",
    "scaml_train --adata microglia.h5ad --label-key label_ref --split random --test-size 0.2 --seed 0 "
    "--models lr --outdir results/random",
    "scaml_predict --model results/H4_to_H8/xgb/model --adata microglia.h5ad --out new_cells_predictions.csv",
    "scaml_plot --results results/H4_to_H8",
    "scaml_novelty --adata microglia.h5ad --hek-key is_hek --hek-positive true --group-key culture "
    "--embedding X_harmony --outdir results/novelty",
    "scaml_learning_curve --adata microglia.h5ad --label-key label_ref --group-key culture "
    "--embedding X_harmony --outdir results/learning_curve",
]


@pytest.fixture(scope="module")
def microglia(tmp_path_factory, data_dir):
    import anndata
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD
    a = anndata.read_h5ad(data_dir / "cellbench_lung_celllines/cellbench_plate_based.h5ad")
    a = a[(a.obs.demuxlet_cls == "SNG") & (a.obs.cell_line != "H838") & (a.obs.design == "5 cell lines")].copy()
    a = a[:, np.argsort(-np.asarray(a.X.sum(0)).ravel())[:4000]].copy()   # the 4,000 most expressed genes
    harvest = {"sc_celseq2_5cl_p1": "H4", "sc_celseq2_5cl_p2": "H8", "sc_celseq2_5cl_p3": "H8"}
    obs = pd.DataFrame(index=a.obs_names)
    novel = (a.obs.cell_line == "A549").to_numpy()
    obs["label_ref"] = np.where(novel, "", a.obs.cell_line.astype(str))   # the novel cells carry no reference label
    obs["harvest"] = a.obs.batch.astype(str).map(harvest).to_numpy()
    obs["culture"] = a.obs.batch.astype(str).to_numpy()
    obs["is_hek"] = np.where(novel, "true", "false")
    X = sp.csr_matrix(a.X)
    lib = np.asarray(X.sum(1)).ravel()
    logn = sp.diags(1e4 / lib) @ X
    logn.data = np.log1p(logn.data)
    m = anndata.AnnData(X=X, obs=obs, var=pd.DataFrame(index=a.var_names))
    m.obsm["X_harmony"] = TruncatedSVD(20, random_state=0).fit_transform(logn).astype(np.float32)
    d = tmp_path_factory.mktemp("original_readme")
    m.write_h5ad(d / "microglia.h5ad")
    return d


@pytest.fixture(scope="module")
def ran(microglia):
    "Run the eight commands in order in the folder that holds microglia.h5ad, as a user would."
    out = []
    bindir = Path(sys.executable).parent
    for cmd in COMMANDS:
        argv = shlex.split(cmd)
        p = subprocess.run([str(bindir / argv[0]), *argv[1:]], cwd=microglia, capture_output=True, text=True,
                           timeout=900)
        out.append(p)
    return microglia, out


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(COMMANDS)))
def test_original_readme_command(ran, i, seed_layout):
    d, procs = ran
    p = procs[i]
    assert p.returncode == 0, f"{COMMANDS[i]}\n{p.stdout}\n{p.stderr}"
    cmd = COMMANDS[i]
    if cmd.startswith("scaml_train"):
        res = d / cmd.split("--outdir ")[1]
        chk = seed_layout(res)   # the original SCAML tools read it (where the checker is)
        if chk is not None: assert chk.returncode == 0, chk.stdout + chk.stderr
        summary = json.loads((res / "summary_metrics.json").read_text())
        models = cmd.split("--models ")[1].split(" --")[0].split()
        assert sorted(summary) == sorted(models)
        classes = [ln.split("\t")[1] for ln in (res / "classes.txt").read_text().splitlines()]
        assert classes == ["H1975", "H2228", "HCC827"]   # unlabelled ("") cells are not a class
        features = (res / "features.txt").read_text().splitlines()
        if "--features raw" in cmd: assert len(features) == 4000          # raw = all genes
        if "--embedding" in cmd: assert features[0] == "X_harmony_0" and len(features) == 20
        if "--n-hvg 3000" in cmd: assert len(features) == 3000
        for m in models:
            assert (res / m / "model").is_dir() and 0 <= summary[m]["accuracy"] <= 1
        assert max(summary[m]["accuracy"] for m in models) > 0.5   # cell lines: the best model names most cells
    elif cmd.startswith("scaml_predict"):
        pred = pd.read_csv(d / "new_cells_predictions.csv")
        assert len(pred) > 300 and set(pred.iloc[:, 1].astype(str)) <= {"H1975", "H2228", "HCC827"}
    elif cmd.startswith("scaml_plot"):
        assert list((d / "results/H4_to_H8").glob("*.png"))
    elif cmd.startswith("scaml_novelty"):
        res = d / "results/novelty"
        man = json.loads((res / "manifest.json").read_text())
        assert man["use_rep"] == "X_harmony"
        assert (res / "scores.csv").exists() or list(res.glob("*.csv"))
    else:
        res = d / "results/learning_curve"
        assert list(res.glob("*.csv")) and (res / "manifest.json").exists()
        assert json.loads((res / "manifest.json").read_text())["args"]["embedding"] == "X_harmony"
