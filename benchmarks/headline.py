"""The README's headline task in both directions: Tabula Muris FACS (Smart-seq2) -> droplet (10x) and back, with the
default models (lr, rf, xgb, mlp) and settings of `scaml.run_benchmark`. Writes benchmarks/headline.json (the scores)
and nbs/images/headline.png (the figure the README and the docs' home page show).

    python benchmarks/headline.py
    python benchmarks/headline.py --smoke --out /tmp/h.json   # 300 cells, lr, record and figure in a temporary folder
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import scaml  # noqa: E402
from scaml import plots  # noqa: E402

root = Path(__file__).resolve().parents[1]
MODELS = ["lr", "rf", "xgb", "mlp"]
DIRECTIONS = {"FACS -> droplet": ("train", "test"), "droplet -> FACS": ("test", "train")}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="JSON file to write (default benchmarks/headline.json; a temporary file "
                                            "with --smoke, the figure beside it)")
    p.add_argument("--smoke", action="store_true", help="300 cells, lr only: checks that the script runs")
    a = p.parse_args(argv)
    adata = scaml.load_task("tm_facs_to_droplet")      # split: 'train' = FACS (Smart-seq2), 'test' = droplet (10x)
    models, record, png = MODELS, a.out or root / "benchmarks" / "headline.json", root / "nbs" / "images" / "headline.png"
    if a.smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _smoke import smoke_out, tiny
        adata, models = tiny(adata, 300, "label", per_value=10), ["lr"]
        record = smoke_out(a.out and str(a.out), "headline.json")
        png = record.with_suffix(".png")
    out, summaries = {}, {}
    for name, (tr, te) in DIRECTIONS.items():
        res = scaml.run_benchmark(adata, label_key="label", split_key="split", train=tr, test=te, models=models,
                                  progress=False)
        s = res.summary[["accuracy", "f1_macro"]].astype(float)
        summaries[name] = s
        out[name] = {"n_train": int((adata.obs.split == tr).sum()), "n_test": int((adata.obs.split == te).sum()),
                     "scores": {m: {k: round(float(v), 3) for k, v in row.items()} for m, row in s.iterrows()}}
        print(name, res, sep="\n", flush=True)
    Path(record).write_text(json.dumps(
        {"task": "tm_facs_to_droplet", "models": models, "scaml": scaml.__version__, "directions": out}, indent=1) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2), sharey=True)
    for ax, (name, s) in zip(axes, summaries.items()):
        plots.model_comparison(s, ax=ax)
        ax.set_title(f"{name}: {out[name]['n_train']:,} training, {out[name]['n_test']:,} test cells", fontsize=9)
    axes[1].set_ylabel("")
    fig.suptitle("Tabula Muris, Smart-seq2 (FACS) and 10x (droplet): 5 shared cell types", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(exist_ok=True)
    fig.savefig(png, dpi=90, metadata={"Software": None})
    print(f"wrote {record} and {png} ({png.stat().st_size // 1024} KB)", file=sys.stderr)


if __name__ == "__main__":
    main()
