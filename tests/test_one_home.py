"""One home per idea: the temperature fit, the softmax, the fold makers and the atomic file writer each live in one
module, and the novelty scores in one module behind one interface. An AST check over scaml/*.py (as
tests/test_layers.py checks the imports); the few exceptions are listed, each with its reason."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

PKG = Path(__file__).resolve().parents[1] / "scaml"

HOME = {"softmax": "calibration.py", "temper": "calibration.py", "fit_temperature": "calibration.py",
        "maxproba_score": "ood.py", "entropy_score": "ood.py", "group_folds": "splits.py",
        "stratified_folds": "splits.py", "atomic_write": "core.py", "AtomicFile": "core.py"}
# (module, function): why it may call scipy's minimize_scalar outside calibration.py
ALLOWED_MINIMIZE = {("travel.py", "_fit_temperature"): "TRAVEL's own temperature on its similarity scores, a model "
                                                        "parameter fitted on training cells, not a calibration"}
# modules that rename a whole folder into place (a directory swap with a backup), not a file
ALLOWED_RENAME = {"modelfile.py": "write_model swaps the model folder", "results.py": "ResultsFolder swaps the "
                  "results folder"}


def _functions(tree: ast.AST):
    "(enclosing function name, node) for every node of `tree`."
    def walk(node, fn):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            yield name, child
            yield from walk(child, name)
    yield from walk(tree, None)


def offences(pkg: Path) -> list[str]:
    "Every second home of a one-home idea in `pkg`."
    bad = []
    for f in sorted(pkg.glob("*.py")):
        if f.stem.startswith("_"): continue
        me = f.name
        for fn, node in _functions(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in HOME and HOME[node.name] != me:
                bad.append(f"{me}:{node.lineno} defines {node.name}; its home is scaml/{HOME[node.name]}")
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if a.name == "minimize_scalar" and me != "calibration.py" and (me, fn) not in ALLOWED_MINIMIZE:
                        bad.append(f"{me}:{node.lineno} fits a temperature with minimize_scalar; use "
                                   "scaml.calibration.fit_temperature")
                    if a.name in ("softmax", "log_softmax") and node.module.startswith("scipy"):
                        bad.append(f"{me}:{node.lineno} imports scipy's {a.name}; use scaml.calibration.softmax")
                    if a.name.endswith("KFold") and me != "splits.py":
                        bad.append(f"{me}:{node.lineno} makes folds with {a.name}; use scaml.splits.stratified_folds "
                                   "or group_folds")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and me != "core.py":
                attr, args = node.func.attr, node.args
                one_path = len(args) == 1 and not node.keywords and not (
                    isinstance(args[0], ast.Constant) and isinstance(args[0].value, str))
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "os" and attr in ("replace", "rename"):
                    bad.append(f"{me}:{node.lineno} os.{attr}: write files with scaml.core.atomic_write / AtomicFile")
                elif attr == "replace" and one_path:
                    bad.append(f"{me}:{node.lineno} renames a file into place; use scaml.core.atomic_write / AtomicFile")
                elif attr == "rename" and one_path and me not in ALLOWED_RENAME:
                    bad.append(f"{me}:{node.lineno} renames into place; use scaml.core.atomic_write / AtomicFile")
    return bad


def test_one_home_per_idea():
    assert offences(PKG) == []


def test_the_check_can_fail(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import os\nfrom scipy.optimize import minimize_scalar\nfrom sklearn.model_selection import KFold\n"
        "def softmax(z): return z\n"
        "def save(tmp, path):\n    tmp.replace(path)\n    os.replace(tmp, path)\n"
        "def fine(s, df):\n    return s.replace('a', 'b'), df.rename('x')\n")
    got = offences(tmp_path)
    assert len(got) == 5, got
    assert any("defines softmax" in g for g in got) and any("minimize_scalar" in g for g in got)


def test_novelty_scorers_share_one_interface():
    "Every matrix-level scorer of scaml.ood is fitted with fit(Z, y) and scores with score(Z)."
    from scaml.ood import DETECTORS, KNNScore, MahalanobisScore, NoveltyScorer, OneClassScore, ResidualScore
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(120, 8)), np.repeat([0, 1, 2], 40)
    scorers = [MahalanobisScore(n_components=None), KNNScore(k=3, n_components=None), ResidualScore(n_components=3),
               NoveltyScorer(smooth=0), *[OneClassScore(m, n_components=None) for m in DETECTORS]]
    for s in scorers:
        out = s.fit(Z, y).score(Z[:7] + 5)
        assert out.shape == (7,) and np.isfinite(out).all(), s
        assert np.median(out) > np.median(s.score(Z[:7])), s       # far cells score higher


def test_novelty_uses_the_one_formula():
    "scaml.novelty's classifier scores are the ood formulas, and the temperature the calibration one."
    import scaml.novelty as nov
    import scaml.rejection as rej
    from scaml.calibration import fit_temperature, temper
    from scaml.ood import maxproba_score
    assert nov.one_minus_max is maxproba_score and nov.temper is temper and rej.fit_temperature is fit_temperature
    assert not hasattr(nov, "CombinedNovelty")


def test_novelty_detector_wraps_every_scorer():
    "NoveltyDetector puts the preprocessing in front of any scaml.ood scorer: the one-class ones and 'combined'."
    import pytest
    from scaml.data import toy_adata
    from scaml.novelty import NoveltyDetector
    from scaml.ood import NoveltyScorer, OneClassScore
    from scaml.preprocess import Preprocessor
    ad = toy_adata(n_obs=300, n_vars=120, n_classes=4, random_state=0)
    known = (ad.obs.cell_type != "D").to_numpy()
    det = NoveltyDetector("combined", preprocessor=Preprocessor(n_top_genes=80)).fit(ad[known], label_key="cell_type")
    assert isinstance(det.scorer, NoveltyScorer) and det.classes == ["A", "B", "C"] and det.n_fit_ == known.sum()
    np.testing.assert_allclose(det.score(ad), det.scorer.score(det.preprocessor.transform(ad)))
    assert isinstance(NoveltyDetector("lof").scorer, OneClassScore)
    with pytest.raises(ValueError, match="needs the cell types"): NoveltyDetector("combined").fit(ad[known])
    with pytest.raises(ValueError, match="not fitted"): NoveltyDetector("combined").score(ad)
