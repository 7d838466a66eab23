"""The engines are objects: `run_benchmark` compares no engine name, and every engine refuses what it does not
`support` with the same check, before any data is read."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from scaml.data import toy_adata
from scaml.engines import ENGINES, SUPPORTS, DaskEngine, OutOfCoreEngine, StreamingEngine, MemoryEngine, choose_engine

BENCHMARK = Path(__file__).resolve().parents[1] / "scaml" / "benchmark.py"
# one value per option that asks for it
ASKS = {"use_rep": {"use_rep": "X_pca"}, "query_corrections": {"align_query": True}, "calibrate": {"calibrate": "isotonic"},
        "memory_only": {"models": ["lr", "singler"]}, "majority_vote": {"majority_vote": True},
        "raw_layer": {"layer": "raw"}}

def run_benchmark_node() -> ast.FunctionDef:
    tree = ast.parse(BENCHMARK.read_text())
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_benchmark")

def test_run_benchmark_compares_no_engine():
    fn = run_benchmark_node()
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body          # the docstring names the engines
    names = set(ENGINES) - {"auto"}
    bad = []
    for node in (n for stmt in body for n in ast.walk(stmt)):
        if isinstance(node, ast.Constant) and node.value in names: bad.append(f"line {node.lineno}: {node.value!r}")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            text = [ast.unparse(s) for s in sides]
            if any(t in ("engine", "eng", "eng.name", "engine.name") or t.endswith("_NO_CALIBRATION") for t in text):
                bad.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Name) and node.id.endswith("Engine"): bad.append(f"line {node.lineno}: {node.id}")
    assert bad == [], bad

def test_run_benchmark_is_short():
    fn = run_benchmark_node()
    assert fn.end_lineno - fn.body[1].lineno + 1 <= 120      # the body, after the docstring

@pytest.mark.parametrize("engine", [MemoryEngine(), StreamingEngine(), OutOfCoreEngine(), DaskEngine(client=object())],
                         ids=lambda e: e.name)
def test_each_option_refused_where_unsupported(engine):
    assert set(engine.supports) <= set(SUPPORTS)
    for option, ask in ASKS.items():
        if option in engine.supports: engine.check(**ask)
        else:
            with pytest.raises(ValueError, match=f"{engine.name}|{engine.title}"): engine.check(**ask)

def test_same_message_on_every_engine():
    "An option refused by two engines gets the same message, the engine's name aside."
    for option, ask in ASKS.items():
        msgs = set()
        for e in (StreamingEngine(), OutOfCoreEngine(), DaskEngine(client=object())):
            if option in e.supports: continue
            with pytest.raises(ValueError) as err: e.check(**ask)
            msg = str(err.value).replace(f"does not {e.reads};", "does not X;")
            msgs.add(re.sub(re.escape(e.name), "ENGINE", msg, flags=re.IGNORECASE))
        assert len(msgs) <= 2 if option == "calibrate" else len(msgs) == 1, (option, msgs)

def test_choose_engine():
    ad = toy_adata(n_obs=60, n_vars=30, n_classes=2)
    assert choose_engine("auto", ad).name == "memory" and choose_engine("auto", ad, client=object()).name == "dask"
    assert choose_engine("out-of-core", ad).predicts_together
    with pytest.raises(ValueError, match="engine='gpu'; choose"): choose_engine("gpu", ad)
