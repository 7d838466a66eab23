"""Round trip of a real Seurat object (SeuratObject's `pbmc_small`) through `scaml_export_seurat`.

Needs R with SeuratObject and hdf5r (`.ci/install_r.sh`). Without them the tests fail, unless SCAML_SKIP_R is set
(scripts/test.sh sets it, to the install command, where it cannot install R): then they are skipped with the reason
and that command. With SCAML_REQUIRE_SYSTEM=1 (CI) they fail even then.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scaml.seurat import R_SCRIPT, export_seurat

# Every element must carry anndata's encoding metadata.
pytestmark = pytest.mark.filterwarnings("error::anndata.OldFormatWarning")

# pbmc_small plus one meta.data column of each type, with and without missing values.
R_PREPARE = r"""
suppressPackageStartupMessages({library(SeuratObject); library(Matrix)})
args <- commandArgs(trailingOnly = TRUE)
out <- args[[1]]
data("pbmc_small", package = "SeuratObject")
obj <- pbmc_small
n <- ncol(obj)
md <- obj@meta.data
md$is_b <- md$letter.idents == "B"
md$flag_na <- ifelse(seq_len(n) %% 7 == 0, NA, seq_len(n) %% 2 == 0)
md$int_na <- ifelse(seq_len(n) %% 5 == 0, NA_integer_, seq_len(n) * 3L)
md$dbl_na <- ifelse(seq_len(n) %% 6 == 0, NA_real_, sqrt(seq_len(n)) / 7)
md$chr_na <- ifelse(seq_len(n) %% 4 == 0, NA_character_, paste0("c", seq_len(n) %% 3))
md$fac_na <- factor(ifelse(seq_len(n) %% 9 == 0, NA, c("x", "y")[seq_len(n) %% 2 + 1]), levels = c("y", "x", "unused"))
md$ord <- factor(c("low", "mid", "high")[seq_len(n) %% 3 + 1], levels = c("low", "mid", "high"), ordered = TRUE)
md$utf8 <- ifelse(seq_len(n) %% 2 == 0, "T\u00fcbingen", "Z\u00fcrich")
md$mg_like <- md$groups == "g1"
obj@meta.data <- md
obj[["DATAONLY"]] <- CreateAssayObject(data = GetAssayData(obj, slot = "data"))
saveRDS(obj, file.path(out, "pbmc.rds"))
saveRDS(list(a = 1), file.path(out, "not_seurat.rds"))

# Exact copies of what the .h5ad must hold.
dump_sparse <- function(m, name) {
  writeBin(as.integer(m@p), file.path(out, paste0(name, ".p")), size = 4)
  writeBin(as.integer(m@i), file.path(out, paste0(name, ".i")), size = 4)
  writeBin(as.double(m@x), file.path(out, paste0(name, ".x")), size = 8)
}
dump_sparse(GetAssayData(obj, slot = "counts", assay = "RNA"), "counts")
dump_sparse(GetAssayData(obj, slot = "data", assay = "RNA"), "data")
writeLines(rownames(obj), file.path(out, "genes.txt"))
writeLines(colnames(obj), file.path(out, "cells.txt"))
for (r in Reductions(obj)) writeBin(as.double(t(Embeddings(obj, r))), file.path(out, paste0(r, ".emb")), size = 8)
writeLines(sprintf("%s\t%d", Reductions(obj), sapply(Reductions(obj), function(r) ncol(Embeddings(obj, r)))),
           file.path(out, "reductions.tsv"))
na <- "\001NA\001"
cols <- character(0)
for (k in seq_along(md)) {
  x <- md[[k]]
  kind <- if (is.factor(x)) "factor" else typeof(x)
  lv <- if (is.factor(x)) paste(levels(x), collapse = "\002") else ""
  cols <- c(cols, paste(names(md)[k], kind, is.ordered(x), lv, sep = "\t"))
  v <- if (is.double(x)) sprintf("%.17g", x) else as.character(x)
  v[is.na(x)] <- na
  con <- file(file.path(out, sprintf("col%02d.txt", k)), encoding = "UTF-8")
  writeLines(enc2utf8(v), con)
  close(con)
}
writeLines(cols, file.path(out, "cols.tsv"))
cat(as.character(packageVersion("SeuratObject")), "\n")
"""

def _r_ready() -> str | None:
    "None when R with SeuratObject and hdf5r works, else what is missing."
    if shutil.which("Rscript") is None:
        return "Rscript is not on PATH"
    res = subprocess.run(["Rscript", "-e", "library(SeuratObject); library(hdf5r)"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"R cannot load SeuratObject and hdf5r ({res.stderr.strip().splitlines()[-1:]})"
    return None

@pytest.fixture(scope="module")
def r_dir(tmp_path_factory) -> Path:
    missing = _r_ready()
    if missing:
        install = "install with: sudo bash .ci/install_r.sh (Debian/Ubuntu: apt-get install r-base-core r-cran-seuratobject r-cran-hdf5r)"
        skip = os.environ.get("SCAML_SKIP_R", "")
        if skip not in ("", "0") and os.environ.get("SCAML_REQUIRE_SYSTEM") != "1":
            pytest.skip(f"{missing}; {skip if skip.startswith('install with') else install}")
        pytest.fail(f"{missing}; {install}, or set SCAML_SKIP_R=1 to skip the Seurat export tests"
                    + (" (SCAML_REQUIRE_SYSTEM=1: they must run)" if os.environ.get("SCAML_REQUIRE_SYSTEM") == "1" else ""),
                    pytrace=False)
    d = tmp_path_factory.mktemp("seurat")
    script = d / "prepare.R"
    script.write_text(R_PREPARE)
    subprocess.run(["Rscript", str(script), str(d)], check=True, capture_output=True, text=True)
    return d

@pytest.fixture(scope="module")
def exported(r_dir) -> anndata.AnnData:
    path = export_seurat(r_dir / "pbmc.rds", r_dir / "pbmc.h5ad", label_col="RNA_snn_res.1",
                         hek_from="groups", hek_positive="g1", reductions="all")
    assert path == r_dir / "pbmc.h5ad"
    return anndata.read_h5ad(path)

def _cli() -> str:
    exe = shutil.which("scaml_export_seurat", path=str(Path(sys.executable).parent)) or shutil.which("scaml_export_seurat")
    if exe is None:
        pytest.fail("the console script scaml_export_seurat is not installed; run `pip install -e .`", pytrace=False)
    return exe

def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([_cli(), *map(str, args)], capture_output=True, text=True, check=False)

def _sparse(d: Path, name: str, shape) -> sp.csr_matrix:
    "The cells x genes CSR matrix from R's genes x cells dgCMatrix slots."
    p = np.fromfile(d / f"{name}.p", dtype="<i4")
    i = np.fromfile(d / f"{name}.i", dtype="<i4")
    x = np.fromfile(d / f"{name}.x", dtype="<f8")
    return sp.csc_matrix((x, i, p), shape=shape[::-1]).T.tocsr()

def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]

def _meta(d: Path) -> list[tuple[str, str, bool, list[str], list[str | None]]]:
    out = []
    for k, line in enumerate(_lines(d / "cols.tsv"), start=1):
        name, kind, ordered, levels = line.split("\t")
        values = [None if v == "\x01NA\x01" else v for v in _lines(d / f"col{k:02d}.txt")]
        out.append((name, kind, ordered == "TRUE", levels.split("\x02") if kind == "factor" else [], values))
    return out

def _assert_same_sparse(a, b):
    assert a.shape == b.shape
    a, b = sp.csr_matrix(a), sp.csr_matrix(b)
    assert (a != b).nnz == 0

# ---------------------------------------------------------------------------------------------
# Round trip

def test_names_and_shape(exported, r_dir):
    genes, cells = _lines(r_dir / "genes.txt"), _lines(r_dir / "cells.txt")
    assert exported.shape == (80, 230)
    assert exported.obs_names.tolist() == cells
    assert exported.var_names.tolist() == genes

def test_counts_exact(exported, r_dir):
    counts = _sparse(r_dir, "counts", exported.shape)
    assert sp.issparse(exported.X) and exported.X.format == "csr"
    assert exported.X.dtype == np.float32
    _assert_same_sparse(exported.X.astype(np.float64), counts)
    assert exported.X.sum() == counts.sum()

def test_logcounts_exact(exported, r_dir):
    data = _sparse(r_dir, "data", exported.shape)
    lc = exported.layers["logcounts"]
    assert lc.dtype == np.float64 and lc.format == "csr"
    _assert_same_sparse(lc, data)
    np.testing.assert_array_equal(lc.data, data.data)

def test_every_meta_column(exported, r_dir):
    meta = _meta(r_dir)
    names = [m[0] for m in meta]
    assert exported.obs.columns.tolist() == names + ["cell_type", "is_hek"]
    for name, kind, ordered, levels, values in meta:
        col = exported.obs[name]
        missing = np.array([v is None for v in values])
        got_missing = col.isna().to_numpy()
        np.testing.assert_array_equal(got_missing, missing, err_msg=name)
        if kind == "factor":
            assert isinstance(col.dtype, pd.CategoricalDtype), name
            assert col.cat.categories.tolist() == levels, name
            assert col.cat.ordered == ordered, name
            assert col.astype(object).where(~missing, None).tolist() == values, name
        elif kind == "logical":
            assert str(col.dtype) == ("boolean" if missing.any() else "bool"), name
            assert [None if m else str(bool(v)).upper() for v, m in zip(col, missing)] == values, name
        elif kind == "integer":
            assert str(col.dtype) == ("Int32" if missing.any() else "int32"), name
            assert [None if m else str(int(v)) for v, m in zip(col, missing)] == values, name
        elif kind == "double":
            assert col.dtype == np.float64, name
            expected = np.array([np.nan if v is None else float(v) for v in values])
            np.testing.assert_array_equal(col.to_numpy(), expected, err_msg=name)
        elif kind == "character":
            if missing.any():
                assert isinstance(col.dtype, pd.CategoricalDtype), name
            else:
                assert col.dtype == object, name
            assert col.astype(object).where(~missing, None).tolist() == values, name
        else:
            raise AssertionError(f"unexpected R type {kind} for {name}")
    # Spot checks that do not go through the helpers above.
    assert exported.obs["utf8"].iloc[1] == "T\u00fcbingen"
    assert exported.obs["fac_na"].cat.categories.tolist() == ["y", "x", "unused"]
    assert exported.obs["RNA_snn_res.1"].cat.categories.tolist() == ["0", "1", "2"]

def test_embeddings_exact(exported, r_dir):
    reductions = dict(line.split("\t") for line in _lines(r_dir / "reductions.tsv"))
    assert sorted(exported.obsm) == sorted(f"X_{r}" for r in reductions) == ["X_pca", "X_tsne"]
    for r, ncomp in reductions.items():
        emb = np.fromfile(r_dir / f"{r}.emb", dtype="<f8").reshape(80, int(ncomp))
        got = exported.obsm[f"X_{r}"]
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, emb)

def test_label_and_hek(exported):
    label = exported.obs["cell_type"]   # the default label_key: what scaml_train reads by default
    assert isinstance(label.dtype, pd.CategoricalDtype)
    assert label.cat.categories.tolist() == exported.obs["RNA_snn_res.1"].cat.categories.tolist()
    assert (label.astype(str) == exported.obs["RNA_snn_res.1"].astype(str)).all()
    assert exported.obs["is_hek"].dtype == bool
    np.testing.assert_array_equal(exported.obs["is_hek"].to_numpy(), (exported.obs["groups"] == "g1").to_numpy())
    assert 0 < exported.obs["is_hek"].sum() < 80

def test_var_and_format(exported, r_dir):
    assert exported.var["highly_variable"].dtype == bool
    assert exported.var["highly_variable"].sum() == 20
    with h5py.File(r_dir / "pbmc.h5ad") as f:
        assert f.attrs["encoding-type"] == "anndata" and f.attrs["encoding-version"] == "0.1.0"
        assert f["X"].attrs["encoding-type"] == "csr_matrix"
        assert tuple(f["X"].attrs["shape"]) == (80, 230)
        assert len(f["uns"]) == 0
    # anndata can write the file back.
    exported.write_h5ad(r_dir / "rewritten.h5ad")
    assert anndata.read_h5ad(r_dir / "rewritten.h5ad").shape == (80, 230)
    assert not [p.name for p in r_dir.iterdir() if ".tmp-" in p.name]

def test_console_script_and_logical_hek(r_dir):
    out = r_dir / "cli.h5ad"
    res = _run_cli("--input", r_dir / "pbmc.rds", "--output", out, "--label-col", "letter.idents",
                   "--label-key", "cell_type", "--hek-from", "mg_like", "--hek-key", "hek")
    assert res.returncode == 0, res.stderr
    assert "80 cells x 230 genes" in res.stdout
    a = anndata.read_h5ad(out)
    assert list(a.obsm) == ["X_pca"]  # default: those of pca, umap, harmony present
    assert a.obs["cell_type"].cat.categories.tolist() == ["A", "B"]
    assert a.obs["hek"].dtype == bool
    np.testing.assert_array_equal(a.obs["hek"].to_numpy(), a.obs["mg_like"].to_numpy())
    ref = anndata.read_h5ad(r_dir / "pbmc.h5ad")
    _assert_same_sparse(a.X, ref.X)

def test_no_reductions_and_label_in_place(r_dir):
    out = export_seurat(r_dir / "pbmc.rds", r_dir / "none.h5ad", reductions=[], label_col="groups", label_key="groups")
    a = anndata.read_h5ad(out)
    assert len(a.obsm) == 0
    assert isinstance(a.obs["groups"].dtype, pd.CategoricalDtype)

# ---------------------------------------------------------------------------------------------
# Errors

def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1
    err = [l for l in res.stderr.splitlines() if l.startswith("scaml_export_seurat: error:")]
    assert len(err) == 1, res.stderr
    return err[0]

def test_missing_input(r_dir):
    err = _one_line_error(_run_cli("--input", r_dir / "nope.rds", "--output", r_dir / "x.h5ad"))
    assert "nope.rds" in err and "does not exist" in err
    res = subprocess.run(["Rscript", str(R_SCRIPT), "--input", str(r_dir / "nope.rds"), "--output",
                          str(r_dir / "x.h5ad")], capture_output=True, text=True, check=False)
    assert res.returncode == 1 and "does not exist" in res.stderr
    assert not (r_dir / "x.h5ad").exists()

def test_missing_column_lists_available(r_dir):
    err = _one_line_error(_run_cli("--input", r_dir / "pbmc.rds", "--output", r_dir / "x.h5ad",
                                   "--label-col", "olah_label"))
    assert "--label-col 'olah_label' is not a meta.data column" in err
    assert "available: 'orig.ident', 'nCount_RNA'" in err and "'letter.idents'" in err
    with pytest.raises(RuntimeError, match=r"--hek-from 'nope' is not a meta.data column; available: 'orig.ident'"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", hek_from="nope")
    assert not (r_dir / "x.h5ad").exists()

def test_hek_value_checks(r_dir):
    with pytest.raises(RuntimeError, match=r"--hek-positive 'g9' does not occur .* values: 'g1', 'g2'"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", hek_from="groups", hek_positive="g9")
    with pytest.raises(RuntimeError, match=r"is a character column, not logical; pass --hek-positive"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", hek_from="groups")

def test_missing_assay_and_reduction(r_dir):
    with pytest.raises(RuntimeError, match=r"--assay 'SCT' is not in the object; available: 'RNA', 'DATAONLY'"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", assay="SCT")
    with pytest.raises(RuntimeError, match=r"--reductions 'umap' not in the object; available: 'pca', 'tsne'"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", reductions="pca,umap")

def test_empty_counts(r_dir):
    with pytest.raises(RuntimeError, match=r"assay 'DATAONLY' has an empty counts matrix"):
        export_seurat(r_dir / "pbmc.rds", r_dir / "x.h5ad", assay="DATAONLY")

def test_not_a_seurat_object(r_dir):
    with pytest.raises(RuntimeError, match=r"holds a list, not a Seurat object"):
        export_seurat(r_dir / "not_seurat.rds", r_dir / "x.h5ad")
    (r_dir / "garbage.rds").write_text("not an rds")
    with pytest.raises(RuntimeError, match=r"cannot read --input .* with readRDS"):
        export_seurat(r_dir / "garbage.rds", r_dir / "x.h5ad")

def test_refuses_to_overwrite(r_dir):
    out = r_dir / "keep.h5ad"
    out.write_bytes(b"precious")
    err = _one_line_error(_run_cli("--input", r_dir / "pbmc.rds", "--output", out))
    assert "already exists; choose another --output or pass --overwrite" in err
    with pytest.raises(FileExistsError, match=r"pass --overwrite \(overwrite=True\)"):
        export_seurat(r_dir / "pbmc.rds", out)
    res = subprocess.run(["Rscript", str(R_SCRIPT), "--input", str(r_dir / "pbmc.rds"), "--output", str(out)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1 and "already exists; pass --overwrite" in res.stderr
    assert out.read_bytes() == b"precious"
    err = _one_line_error(_run_cli("--input", r_dir / "pbmc.rds", "--output", out, "--overwrite"))
    assert "was not written by scaml; --overwrite replaces only a file scaml wrote" in err     # not an .h5ad: kept
    assert out.read_bytes() == b"precious"
    err = _one_line_error(_run_cli("--input", r_dir / "pbmc.rds", "--output", r_dir / "pbmc.rds", "--overwrite"))
    assert "the output format follows the file name" in err
    out.unlink()
    assert _run_cli("--input", r_dir / "pbmc.rds", "--output", out).returncode == 0
    res = _run_cli("--input", r_dir / "pbmc.rds", "--output", out, "--overwrite")          # an .h5ad: replaced
    assert res.returncode == 0, res.stderr
    assert anndata.read_h5ad(out).shape == (80, 230)

def test_rscript_not_found(r_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="r-cran-seuratobject r-cran-hdf5r"):
        export_seurat(r_dir / "pbmc.rds", tmp_path / "x.h5ad", rscript="no-such-Rscript")

def test_export_then_train_with_the_default_label_key(r_dir, tmp_path):
    "The exporter writes the label where scaml_train reads it by default, and prints the command that trains on it."
    import shlex
    out = tmp_path / "ref.h5ad"
    res = _run_cli("--input", r_dir / "pbmc.rds", "--output", out, "--label-col", "letter.idents")
    assert res.returncode == 0, res.stderr
    assert anndata.read_h5ad(out).obs["cell_type"].cat.categories.tolist() == ["A", "B"]
    hint = next(line for line in res.stdout.splitlines() if line.startswith("next: scaml_train"))
    argv = shlex.split(hint[len("next: "):])
    assert argv[argv.index("--label-key") + 1] == "cell_type"
    scaml_train = str(Path(sys.executable).parent / "scaml_train")
    no_key = [a for a in argv[1:argv.index("--outdir")] if a not in ("--label-key", "cell_type")]
    for args in (argv[1:],                                                    # as printed
                 no_key + ["--models", "lr", "--outdir", "results/default_key"]):  # no --label-key: the default agrees
        p = subprocess.run([scaml_train, *args], cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    for run in ("results/ref", "results/default_key"):
        classes = [ln.split("\t")[1] for ln in (tmp_path / run / "classes.txt").read_text().splitlines()]
        assert classes == ["A", "B"], run
    # without --label-col the hint says to name the column
    res = _run_cli("--input", r_dir / "pbmc.rds", "--output", tmp_path / "nolabel.h5ad")
    assert res.returncode == 0 and "--label-key COLUMN" in res.stdout
