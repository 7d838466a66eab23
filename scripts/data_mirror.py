#!/usr/bin/env python
"""Write a local mirror of the public files that scaml's registered datasets are built from, and serve it over HTTP.

Usage: python scripts/data_mirror.py DATA_DIR OUT [--serve PORT] [--no-pip]
  DATA_DIR : a folder with the built datasets (the layout of `scaml.datasets.DATASETS[...].path`), e.g. ../shared/data
  OUT      : the mirror folder; it gets `<dataset folder>/original/<file name>` for every registered source file,
             the layout that `SCAML_DATA_URL` points at (`SCAML_DATA_URL=http://127.0.0.1:PORT`)
  --serve  : then serve OUT on 127.0.0.1:PORT until interrupted
  --no-pip : do not try `pip download` for the two wheels (celltypist, scanpy); recreate them

Files whose upstream bytes are in DATA_DIR (`<dataset folder>/original/`) are copied unchanged, and the two wheels are
fetched with `pip download` (their upstream bytes, so the registered checksums hold) where pip reaches an index. The others are
recreated from the built datasets: they hold the same data as the upstream files, but not the same bytes
(`recreated` lists them), so a registry that pins their upstream checksums must be given the recreated ones
(`mirror_registry`). The built datasets' content checksums stay the registered ones either way.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import shutil
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd


def _copy_original(data: Path, ds, out: Path, name: str) -> bool:
    "Copy an unchanged upstream file from DATA_DIR/<folder>/original/ when it is there."
    src = data / Path(ds.path).parent / "original" / name
    if not src.exists(): return False
    shutil.copyfile(src, out / name)
    return True


def _actinn_train_set(data: Path, out: Path) -> None:
    "train_set.csv.gz: genes x cells integer counts, as in the ACTINN repository."
    import anndata
    a = anndata.read_h5ad(data / "actinn_tm_droplet/actinn_tm_droplet.h5ad")
    df = pd.DataFrame(a.X.T.toarray().astype(np.int64), index=a.var_names, columns=a.obs_names)
    with gzip.open(out / "train_set.csv.gz", "wt", compresslevel=1) as fh: df.to_csv(fh)


def _pip_wheel(name: str, out: Path) -> bool:
    "Fetch the wheel file `name` (e.g. celltypist-1.7.1-py3-none-any.whl) with pip into `out`; False if pip cannot."
    import subprocess
    import sys
    import tempfile
    dist, version = name.split("-")[:2]
    with tempfile.TemporaryDirectory() as d:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            f"{dist}=={version}", "-d", d], check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError):
            return False
        if not (Path(d) / name).exists(): return False
        shutil.copyfile(Path(d) / name, out / name)
    return True


def _gene_names_wheel(data: Path, out: Path) -> None:
    "A zip at the celltypist wheel's name whose GENCODE member maps the CellBench Ensembl ids to their symbols."
    import anndata
    import scaml.datasets as sd
    pb = anndata.read_h5ad(data / sd.DATASETS["cellbench_plate_based"].path, backed="r")
    tx = anndata.read_h5ad(data / sd.DATASETS["cellbench_10x_3cl"].path, backed="r")
    ids = pd.Series(pb.var["gene_symbol"].to_numpy(), index=pb.var_names)
    ids = ids[ids != ""]
    extra = pd.Series(tx.var_names.to_numpy(), index=tx.var["gene_id"].to_numpy())
    extra = extra[(extra.index != "") & ~extra.index.isin(ids.index)]
    # symbols that the full table gives to several ids (no gene_id in the 10x file) stay ambiguous here too
    ambiguous = [g for g, i in zip(tx.var_names, tx.var["gene_id"]) if i == "" and g in set(ids.to_numpy())]
    table = pd.concat([ids, extra, pd.Series(ambiguous, index=[f"ambiguous_{k}" for k in range(len(ambiguous))])])
    with zipfile.ZipFile(out / sd._CELLTYPIST_WHEEL, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(sd._GENE_NAMES_MEMBER, table.to_csv(header=False))


def _scanpy_wheel(data: Path, out: Path) -> None:
    "A zip at the scanpy wheel's name holding the pbmc68k_reduced file of the installed scanpy package."
    import scaml.datasets as sd
    p = sd._scanpy_pbmc_file()
    if p is None: raise FileNotFoundError("recreating the scanpy wheel needs scanpy installed")
    with zipfile.ZipFile(out / sd._SCANPY_WHEEL.name, "w") as z: z.write(p, sd._PBMC_MEMBER)


def _mixology_csvs(data: Path, out: Path) -> None:
    """sc_mixology's per-experiment count (genes x cells) and metadata CSVs.

    Each upstream CSV lists only some genes; the recreated ones list the genes an experiment detected plus, where
    `var.n_experiments_listing_gene` says more experiments listed a gene, that many more (with zero counts).
    """
    import anndata
    import scaml.datasets as sd
    a = anndata.read_h5ad(data / sd.DATASETS["cellbench_plate_based"].path)
    batches = list(sd._MIXOLOGY_EXPERIMENTS)
    rows = {b: (a.obs["batch"] == b).to_numpy() for b in batches}
    listed = {b: np.asarray((a.X[rows[b]] != 0).sum(0)).ravel() > 0 for b in batches}
    want = a.var["n_experiments_listing_gene"].to_numpy()
    have = sum(listed[b].astype(int) for b in batches)
    for j in np.flatnonzero(have < want):
        for b in batches:
            if have[j] >= want[j]: break
            if not listed[b][j]: listed[b][j] = True; have[j] += 1
    for b in batches:
        s = a[rows[b]]
        cnt = pd.DataFrame(s.X[:, listed[b]].toarray().T.astype(np.int64), index=a.var_names[listed[b]],
                           columns=s.obs["barcode"].astype(str).to_numpy())
        with gzip.open(out / f"{b}.count.csv.gz", "wt", compresslevel=1) as fh: cnt.to_csv(fh)
        meta = pd.DataFrame(index=cnt.columns)
        if s.obs["design"].iloc[0] == "3 cell lines": meta["cell_line"] = s.obs["cell_line"].astype(str).to_numpy()
        for c in ["cell_line_demuxlet", "demuxlet_cls", "total_count_per_cell", "number_of_genes", "mapped_to_MT",
                  "outliers"]:
            meta[c] = s.obs[c].astype(str).to_numpy() if c == "outliers" else s.obs[c].to_numpy()
        with gzip.open(out / f"{b}.metadata.csv.gz", "wt", compresslevel=1) as fh: meta.to_csv(fh)


class S4:
    "An R S4 object for `write_rda`: its class, the package that defines it, and its slots."
    def __init__(self, cls: str, package: str, **slots):
        self.cls, self.package, self.slots = cls, package, slots


def write_rda(path: Path, objects: dict) -> None:
    "Write R objects (numpy arrays, dicts as named lists, `S4`) to a gzip-compressed XDR `.rda` file, as R's `save`."
    from unittest import mock

    import rdata
    import rdata.unparser
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP, build_r_char, build_r_list, build_r_object
    from rdata.parser import RObjectType
    from rdata.unparser._unparser import pack_r_object_info

    def s4(data: S4, conv) -> object:
        # symbols are numbered in the order they are written: slots (tag, value), then "class", then "package"
        slots = [(conv.convert_to_r_sym(k), conv.convert_to_r_object(v)) for k, v in data.slots.items()]
        cls_sym = conv.convert_to_r_sym("class")
        pkg_sym = conv.convert_to_r_sym("package")
        pkg = build_r_object(RObjectType.STR, value=[build_r_char(data.package, encoding=conv.encoding)])
        cls = build_r_object(RObjectType.STR, value=[build_r_char(data.cls, encoding=conv.encoding)],
                             attributes=build_r_list([(pkg_sym, pkg)]))
        return build_r_object(RObjectType.S4, is_object=True, gp=16,  # 16: R's S4 object bit
                              attributes=build_r_list([*slots, (cls_sym, cls)]))

    class XDR(rdata.unparser.UnparserXDR):
        "rdata's writer plus S4 objects (no data of their own: the slots are the attributes)."
        def unparse_r_object(self, obj) -> None:
            if obj.info.type is not RObjectType.S4: return super().unparse_r_object(obj)
            self.unparse_int(pack_r_object_info(obj.info))
            self.unparse_r_object(obj.attributes)

    with mock.patch.object(rdata.unparser, "UnparserXDR", XDR):
        rdata.write_rda(path, objects, constructor_dict={**DEFAULT_CLASS_MAP, S4: s4})


def _cepo_rda(data: Path, out: Path) -> None:
    """Cepo's data/cellbench.rda: a SingleCellExperiment with `counts` (dgCMatrix, genes x cells) and colData.

    The gene names keep the upstream repeats (the built file makes them unique).
    """
    import anndata
    import scipy.sparse as sp
    import scaml.datasets as sd
    a = anndata.read_h5ad(data / sd.DATASETS["cellbench_10x_3cl"].path)
    names = set(a.var_names)
    base = lambda g: g.rsplit("-", 1)[0] if "-" in g and g.rsplit("-", 1)[1].isdigit() and g.rsplit("-", 1)[0] in names else g
    genes = np.array([base(g) for g in a.var_names])  # undo var_names_make_unique
    m = sp.csc_matrix(a.X.T)
    counts = S4("dgCMatrix", "Matrix", i=m.indices.astype(np.int32), p=m.indptr.astype(np.int32),
                Dim=np.array(m.shape, dtype=np.int32), Dimnames=[genes, None], x=m.data.astype(np.float64),
                factors=[])
    cells = np.array([c.split(":", 1)[1] for c in a.obs_names])
    cols = {c: (a.obs[c].astype(str).to_numpy() if a.obs[c].dtype.name == "category" else a.obs[c].to_numpy())
            for c in ["cell_line", "cell_line_demuxlet", "demuxlet_cls", "total_count_per_cell", "number_of_genes"]}
    col_data = S4("DFrame", "S4Vectors", rownames=cells, nrows=np.array([len(cells)], dtype=np.int32),
                  listData=cols, elementType=np.array(["ANY"]), metadata=[])
    assays = S4("SimpleAssays", "SummarizedExperiment",
                data=S4("SimpleList", "S4Vectors", listData={"counts": counts}, elementType=np.array(["ANY"]),
                        metadata=[]))
    sce = S4("SingleCellExperiment", "SingleCellExperiment", colData=col_data, assays=assays, NAMES=genes,
             metadata=[])
    write_rda(out / "cellbench.rda", {"cellbench": sce})


def _muscat_rda(data: Path, out: Path) -> None:
    """muscat's data/example_sce.rda: a SingleCellExperiment with `counts` (dgCMatrix, genes x cells, the barcodes as
    column names, repeated across samples) and colData `cluster_id`, `sample_id`, `group_id`."""
    import anndata
    import scipy.sparse as sp
    import scaml.datasets as sd
    a = anndata.read_h5ad(data / sd.DATASETS["muscat_kang_ifnb"].path)
    genes = np.asarray(a.var_names, dtype=str)
    cells = np.array([c.split("_", 1)[1] for c in a.obs_names])
    m = sp.csc_matrix(a.X.T)
    counts = S4("dgCMatrix", "Matrix", i=m.indices.astype(np.int32), p=m.indptr.astype(np.int32),
                Dim=np.array(m.shape, dtype=np.int32), Dimnames=[genes, cells], x=m.data.astype(np.float64),
                factors=[])
    cols = {"cluster_id": a.obs["label"].astype(str).to_numpy(), "sample_id": a.obs["sample_id"].astype(str).to_numpy(),
            "group_id": a.obs["batch"].astype(str).to_numpy()}
    col_data = S4("DFrame", "S4Vectors", rownames=cells, nrows=np.array([len(cells)], dtype=np.int32),
                  listData=cols, elementType=np.array(["ANY"]), metadata=[])
    assays = S4("SimpleAssays", "SummarizedExperiment",
                data=S4("SimpleList", "S4Vectors", listData={"counts": counts}, elementType=np.array(["ANY"]),
                        metadata=[]))
    sce = S4("SingleCellExperiment", "SingleCellExperiment", colData=col_data, assays=assays, NAMES=genes,
             metadata=[])
    write_rda(out / "example_sce.rda", {"example_sce": sce})


def write_mirror(data: Path, out: Path, names=None, pip: bool = False) -> list[str]:
    """Fill OUT with the source files of the datasets `names` (default all registered ones); `pip`: try
    `pip download` for the wheels first (it reaches the package index; the tests leave it off).

    Returns the names of the recreated files (see the module note)."""
    import scaml.datasets as sd
    makers = {"train_set.csv.gz": _actinn_train_set, "cellbench.rda": _cepo_rda, "example_sce.rda": _muscat_rda,
              sd._CELLTYPIST_WHEEL: _gene_names_wheel, sd._SCANPY_WHEEL.name: _scanpy_wheel}
    made: dict[str, Path] = {}
    copied = set()
    for ds in (sd.DATASETS[n] for n in (names or sd.DATASETS)):
        dest = out / Path(ds.path).parent / "original"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ds.files:
            if (dest / f.name).exists(): made[f.name] = dest / f.name; continue
            if f.name in made: shutil.copyfile(made[f.name], dest / f.name); continue
            if _copy_original(data, ds, dest, f.name): copied.add(f.name)
            elif pip and f.name.endswith(".whl") and _pip_wheel(f.name, dest): copied.add(f.name)
            elif f.name in makers: makers[f.name](data, dest)
            elif f.name.endswith((".count.csv.gz", ".metadata.csv.gz")): _mixology_csvs(data, dest)
            else: raise FileNotFoundError(f"no way to recreate {f.name!r} of dataset {ds.name!r}")
            made[f.name] = dest / f.name
    return sorted(set(made) - copied)


def mirror_registry(out: Path) -> dict:
    "The registry with the checksums of the mirror's recreated files in place of the upstream ones they stand for."
    # files the mirror does not hold keep their entries
    import scaml.datasets as sd
    reg = {}
    for name, ds in sd.DATASETS.items():
        files = []
        for f in ds.files:
            p = out / Path(ds.path).parent / "original" / f.name
            keep = not p.exists() or (f.sha256 is not None and sd.file_sha256(p) == f.sha256)
            files.append(f if keep else dataclasses.replace(f, sha256=sd.file_sha256(p)))
        reg[name] = dataclasses.replace(ds, files=tuple(files))
    return reg


def serve(folder: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    "Serve `folder` on 127.0.0.1 in a daemon thread; returns the server and its base URL (stop: `server.shutdown()`)."
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path); p.add_argument("out", type=Path)
    p.add_argument("--serve", type=int, metavar="PORT")
    p.add_argument("--no-pip", action="store_true")
    a = p.parse_args()
    recreated = write_mirror(a.data, a.out, pip=not a.no_pip)
    print(f"mirror in {a.out}; recreated (same data, not the upstream bytes): {', '.join(recreated)}")
    if a.serve is not None:
        httpd, url = serve(a.out, a.serve)
        print(f"serving {a.out} at {url}; use SCAML_DATA_URL={url}", flush=True)
        try: threading.Event().wait()
        except KeyboardInterrupt: httpd.shutdown()


if __name__ == "__main__":
    main()
