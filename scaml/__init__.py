__version__ = "0.4.0"

# The front door: `import scaml; scaml.run_benchmark(...)`. Names are imported on first use, so `import scaml` stays
# cheap (no anndata, scikit-learn, torch or XGBoost until they are needed).
_API = {
    "CellTypeModel": "models", "annotate": "models", "Preprocessor": "preprocess",
    "run_benchmark": "benchmark", "run_matrix": "matrix", "learning_curve": "learning_curves",
    "NoveltyDetector": "novelty", "run_novelty": "novelty", "fit_rejection": "rejection",
    "predict_with_rejection": "rejection", "evaluate": "metrics", "read": "io", "read_h5ad": "data",
    "load_dataset": "datasets", "load_task": "datasets", "read_results": "results", "toy_adata": "data",
    "split_cells": "splits", "filter_cells": "splits", "top_genes": "explain",
}


def __getattr__(name: str):
    import importlib
    if name in _API:
        value = getattr(importlib.import_module(f"scaml.{_API[name]}"), name)
    elif name in ("pl", "pp"):
        value = importlib.import_module("scaml.plots" if name == "pl" else "scaml.preprocess")
    else:
        raise AttributeError(f"module 'scaml' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_API, "pl", "pp"])
