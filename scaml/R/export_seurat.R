#!/usr/bin/env Rscript
# Export a Seurat object (.rds) to an AnnData file (.h5ad) for scaml.
#
# Usage:
#   Rscript export_seurat.R --input obj.rds --output out.h5ad [--assay RNA]
#       [--label-col COL] [--label-key label]
#       [--hek-from COL] [--hek-key is_hek] [--hek-positive VALUE]
#       [--reductions pca,umap,harmony] [--overwrite]
#
# Writes the AnnData on-disk format (anndata >= 0.8) with hdf5r:
#   X                  raw counts, cells x genes, CSR
#   layers/logcounts   the assay's normalised `data`, CSR (only when it differs from counts)
#   obs                meta.data (factors as categoricals), plus the label / is_hek columns
#   var                gene names, feature metadata, `highly_variable`
#   obsm/X_<name>      cell embeddings of the requested reductions
# Needs the R packages SeuratObject (>= 4), Matrix and hdf5r. Seurat v5 objects need SeuratObject >= 5.

USAGE <- paste(
  "usage: Rscript export_seurat.R --input obj.rds --output out.h5ad [--assay RNA]",
  "[--label-col COL] [--label-key label] [--hek-from COL] [--hek-key is_hek]",
  "[--hek-positive VALUE] [--reductions pca,umap,harmony] [--overwrite]"
)
DEFAULT_REDUCTIONS <- c("pca", "umap", "harmony")
OPTIONS <- c("input", "output", "assay", "label-col", "label-key", "hek-from", "hek-key",
             "hek-positive", "reductions")
FLAGS <- c("overwrite", "help")

# ---------------------------------------------------------------------------------------------
# Command line and messages

fail <- function(...) stop(structure(
  class = c("export_error", "error", "condition"),
  list(message = paste0(...), call = NULL)
))

quote_all <- function(x, max = 30L) {
  x <- as.character(x)
  more <- if (length(x) > max) sprintf(", ... (%d more)", length(x) - max) else ""
  if (length(x) == 0L) return("(none)")
  paste0(paste0("'", utils::head(x, max), "'", collapse = ", "), more)
}

parse_args <- function(args) {
  opts <- list(assay = "RNA", `label-key` = "label", `hek-key` = "is_hek", overwrite = FALSE)
  i <- 1L
  while (i <= length(args)) {
    a <- args[[i]]
    if (!startsWith(a, "--")) fail("unexpected argument '", a, "'; ", USAGE)
    key <- sub("^--", "", a)
    value <- NULL
    if (grepl("=", key, fixed = TRUE)) {
      value <- sub("^[^=]*=", "", key)
      key <- sub("=.*$", "", key)
    }
    key <- gsub("_", "-", key, fixed = TRUE)
    if (key %in% FLAGS) {
      if (!is.null(value)) fail("--", key, " takes no value; ", USAGE)
      opts[[key]] <- TRUE
    } else if (key %in% OPTIONS) {
      if (is.null(value)) {
        if (i == length(args)) fail("--", key, " needs a value; ", USAGE)
        i <- i + 1L
        value <- args[[i]]
      }
      opts[[key]] <- value
    } else {
      fail("unknown option --", key, "; options: ",
           paste0("--", c(OPTIONS, "overwrite"), collapse = " "))
    }
    i <- i + 1L
  }
  opts
}

note <- function(...) cat("export_seurat: ", ..., "\n", sep = "", file = stderr())

# ---------------------------------------------------------------------------------------------
# HDF5 writers for the AnnData encoding

h5_str <- function() {
  t <- hdf5r::H5T_STRING$new(type = "c", size = Inf)
  t$set_cset(hdf5r::h5const$H5T_CSET_UTF8)
  t
}
h5_bool <- function() hdf5r::H5T_LOGICAL$new(include_NA = FALSE)

set_attr <- function(obj, name, value) {
  if (is.character(value)) {
    dtype <- h5_str()
  } else if (is.logical(value)) {
    dtype <- h5_bool()
  } else {
    dtype <- NULL
  }
  space <- if (length(value) == 1L && !identical(name, "column-order")) {
    hdf5r::H5S$new("scalar")
  } else {
    hdf5r::H5S$new("simple", dims = length(value), maxdims = length(value))
  }
  a <- if (length(value) == 0L) {
    obj$create_attr(name, dtype = dtype, space = space)
  } else {
    obj$create_attr(name, robj = value, dtype = dtype, space = space)
  }
  a$close()
  invisible(NULL)
}

set_encoding <- function(obj, type, version) {
  set_attr(obj, "encoding-type", type)
  set_attr(obj, "encoding-version", version)
}

write_vec <- function(group, name, x, dtype = NULL) {
  if (is.character(x)) {
    dtype <- h5_str()
  } else if (is.logical(x) && is.null(dtype)) {
    dtype <- h5_bool()
  }
  if (length(x) == 0L) {
    d <- group$create_dataset(name, dtype = dtype, chunk_dims = NULL,
                              space = hdf5r::H5S$new("simple", dims = 0, maxdims = 0))
  } else {
    d <- group$create_dataset(name, robj = x, dtype = dtype)
  }
  d
}

write_array <- function(group, name, x, dtype = NULL) {
  d <- write_vec(group, name, x, dtype)
  set_encoding(d, if (is.character(x)) "string-array" else "array", "0.2.0")
  d$close()
}

write_categorical <- function(group, name, f) {
  lv <- levels(f)
  keep <- !is.na(lv)
  codes <- match(as.character(f), lv[keep]) - 1L
  codes[is.na(codes)] <- -1L
  g <- group$create_group(name)
  set_encoding(g, "categorical", "0.2.0")
  set_attr(g, "ordered", is.ordered(f))
  write_array(g, "codes", codes, dtype = hdf5r::h5types$H5T_NATIVE_INT32)
  write_array(g, "categories", lv[keep])
  g$close()
}

write_nullable <- function(group, name, x, type) {
  g <- group$create_group(name)
  set_encoding(g, type, "0.1.0")
  mask <- is.na(x)
  values <- x
  values[mask] <- if (is.logical(x)) FALSE else 0L
  write_array(g, "values", values, if (is.logical(x)) NULL else hdf5r::h5types$H5T_NATIVE_INT32)
  write_array(g, "mask", mask)
  g$close()
}

# Write one data.frame column; returns FALSE when the type is not supported.
write_column <- function(group, name, x) {
  if (is.factor(x)) {
    write_categorical(group, name, x)
  } else if (is.logical(x)) {
    if (anyNA(x)) write_nullable(group, name, x, "nullable-boolean") else write_array(group, name, x)
  } else if (is.integer(x)) {
    if (anyNA(x)) {
      write_nullable(group, name, x, "nullable-integer")
    } else {
      write_array(group, name, x, dtype = hdf5r::h5types$H5T_NATIVE_INT32)
    }
  } else if (is.double(x)) {
    write_array(group, name, as.vector(x), dtype = hdf5r::h5types$H5T_NATIVE_DOUBLE)
  } else if (is.character(x)) {
    # String datasets cannot hold a missing value; a categorical with code -1 can.
    if (anyNA(x)) write_categorical(group, name, factor(x)) else write_array(group, name, x)
  } else {
    return(FALSE)
  }
  TRUE
}

write_dataframe <- function(file, name, df, index, what) {
  g <- file$create_group(name)
  set_encoding(g, "dataframe", "0.2.0")
  set_attr(g, "_index", "_index")
  written <- character(0)
  for (col in names(df)) {
    key <- gsub("/", "_", col, fixed = TRUE)
    if (key != col) note(what, " column '", col, "' written as '", key, "' (HDF5 names cannot hold '/')")
    if (key == "_index" || key %in% written) {
      note("skipped ", what, " column '", col, "': the name '", key, "' is already used")
      next
    }
    if (write_column(g, key, df[[col]])) {
      written <- c(written, key)
    } else {
      note("skipped ", what, " column '", col, "' of unsupported type ", class(df[[col]])[1])
    }
  }
  set_attr(g, "column-order", written)
  write_array(g, "_index", as.character(index))
  g$close()
  written
}

write_csr <- function(group, name, m, n_obs, n_vars, dtype) {
  # A genes x cells dgCMatrix (CSC) holds exactly the cells x genes CSR arrays.
  g <- group$create_group(name)
  set_encoding(g, "csr_matrix", "0.1.0")
  set_attr(g, "shape", c(as.integer(n_obs), as.integer(n_vars)))
  d <- write_vec(g, "data", m@x, dtype)
  d$close()
  d <- write_vec(g, "indices", m@i, hdf5r::h5types$H5T_NATIVE_INT32)
  d$close()
  d <- write_vec(g, "indptr", m@p, hdf5r::h5types$H5T_NATIVE_INT32)
  d$close()
  g$close()
}

empty_dict <- function(file, name) {
  g <- file$create_group(name)
  set_encoding(g, "dict", "0.1.0")
  g
}

# ---------------------------------------------------------------------------------------------
# Reading the Seurat object

as_dgc <- function(m, what) {
  if (inherits(m, "dgCMatrix")) return(m)
  out <- tryCatch(methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix"),
                  error = function(e) NULL)
  if (!is.null(out) && !inherits(out, "dgCMatrix")) {
    out <- tryCatch(methods::as(out, "dMatrix"), error = function(e) NULL)
  }
  if (is.null(out) || !inherits(out, "dgCMatrix")) {
    fail("the ", what, " matrix is a ", class(m)[1], " that cannot be converted to a sparse ",
         "dgCMatrix; convert it in R with as(x, 'dgCMatrix') and save the object again")
  }
  out
}

saved_with_v5 <- function(obj) {
  isTRUE(tryCatch(numeric_version(as.character(obj@version)) >= "5", error = function(e) FALSE))
}

is_v5_assay <- function(assay) methods::is(assay, "Assay5")

# Returns list(counts = dgCMatrix or NULL, data = dgCMatrix or NULL), genes x cells.
assay_matrices <- function(obj, assay_name) {
  assay <- obj[[assay_name]]
  if (is_v5_assay(assay)) {
    layers <- SeuratObject::Layers(assay)
    split <- any(grepl("^(counts|data)\\.", layers))
    if (split) {
      note("joining split layers of assay '", assay_name, "': ", paste(layers, collapse = ", "))
      assay <- SeuratObject::JoinLayers(assay)
      layers <- SeuratObject::Layers(assay)
    }
    get <- function(layer) {
      if (!layer %in% layers) return(NULL)
      SeuratObject::LayerData(assay, layer = layer)
    }
    list(counts = get("counts"), data = get("data"))
  } else {
    v5_api <- utils::packageVersion("SeuratObject") >= "5"
    get <- function(slot) {
      m <- if (v5_api) {
        tryCatch(SeuratObject::LayerData(assay, layer = slot), error = function(e) NULL)
      } else {
        SeuratObject::GetAssayData(obj, slot = slot, assay = assay_name)
      }
      if (is.null(m) || length(dim(m)) != 2L || any(dim(m) == 0L)) NULL else m
    }
    list(counts = get("counts"), data = get("data"))
  }
}

align <- function(m, genes, cells) {
  if (is.null(rownames(m)) || is.null(colnames(m))) return(NULL)
  if (!all(genes %in% rownames(m)) || !all(cells %in% colnames(m))) return(NULL)
  if (identical(rownames(m), genes) && identical(colnames(m), cells)) return(m)
  m[genes, cells, drop = FALSE]
}

same_matrix <- function(a, b) {
  identical(dim(a), dim(b)) && identical(a@p, b@p) && identical(a@i, b@i) && identical(a@x, b@x)
}

check_column <- function(meta, col, option) {
  if (!col %in% names(meta)) {
    fail(option, " '", col, "' is not a meta.data column; available: ", quote_all(names(meta)),
         ". Pass ", option, " with one of them")
  }
}

check_key <- function(meta, key, source, option) {
  if (key %in% names(meta) && key != source) {
    fail(option, " '", key, "' is already a meta.data column; pass ", option,
         " with a new name, or drop that column in R")
  }
}

hek_column <- function(x, col, positive) {
  if (is.null(positive)) {
    if (!is.logical(x)) {
      fail("--hek-from '", col, "' is a ", class(x)[1], " column, not logical; pass --hek-positive ",
           "with the value that marks HEK cells (values: ", quote_all(sort(unique(as.character(x)))), ")")
    }
    out <- x
  } else {
    values <- unique(as.character(x[!is.na(x)]))
    if (!positive %in% values) {
      fail("--hek-positive '", positive, "' does not occur in meta.data column '", col,
           "'; values: ", quote_all(sort(values)), ". Pass one of them")
    }
    out <- as.character(x) == positive
  }
  if (anyNA(out)) {
    note(sum(is.na(out)), " cells with a missing '", col, "' are written as not HEK")
    out[is.na(out)] <- FALSE
  }
  out
}

# ---------------------------------------------------------------------------------------------
# Main

export_seurat <- function(opts) {
  input <- opts[["input"]]
  output <- opts[["output"]]
  if (is.null(input)) fail("--input is required; ", USAGE)
  if (is.null(output)) fail("--output is required; ", USAGE)
  if (!file.exists(input)) fail("--input '", input, "' does not exist; pass the path of a Seurat object saved with saveRDS()")
  out_dir <- dirname(normalizePath(output, mustWork = FALSE))
  if (!dir.exists(out_dir)) fail("the folder of --output '", output, "' does not exist; create '", out_dir, "' first")
  if (file.exists(output) && !isTRUE(opts[["overwrite"]])) {
    fail("--output '", output, "' already exists; pass --overwrite to replace it")
  }

  for (pkg in c("SeuratObject", "Matrix", "hdf5r")) {
    if (!requireNamespace(pkg, quietly = TRUE)) {
      fail("the R package '", pkg, "' is not installed; install it with install.packages('", pkg,
           "') or on Debian/Ubuntu apt-get install r-cran-", tolower(pkg))
    }
  }
  suppressPackageStartupMessages({
    library(SeuratObject)
    library(Matrix)
  })

  obj <- tryCatch(readRDS(input), error = function(e) {
    fail("cannot read --input '", input, "' with readRDS(): ", conditionMessage(e))
  })
  if (!inherits(obj, "Seurat")) {
    fail("--input '", input, "' holds a ", class(obj)[1], ", not a Seurat object; ",
         if (inherits(obj, "seurat")) "update it in R with UpdateSeuratObject() and save it again" else
           "pass an .rds saved with saveRDS() from a Seurat object")
  }

  assay_name <- opts[["assay"]]
  assays <- SeuratObject::Assays(obj)
  if (!assay_name %in% assays) {
    fail("--assay '", assay_name, "' is not in the object; available: ", quote_all(assays),
         ". Pass --assay with one of them")
  }
  mats <- tryCatch(assay_matrices(obj, assay_name), error = function(e) {
    fail("cannot read assay '", assay_name, "' (", class(obj[[assay_name]])[1], ", SeuratObject ",
         as.character(utils::packageVersion("SeuratObject")), "): ", conditionMessage(e),
         if (saved_with_v5(obj) && utils::packageVersion("SeuratObject") < "5")
           "; the object was saved with SeuratObject 5, install SeuratObject >= 5" else "")
  })
  counts <- mats$counts
  if (is.null(counts) || length(dim(counts)) != 2L || any(dim(counts) == 0L)) {
    fail("assay '", assay_name, "' has an empty counts matrix; the .h5ad needs raw counts in X, ",
         "so pick an assay that holds counts (available: ", quote_all(assays), ")")
  }
  counts <- as_dgc(counts, "counts")
  cells <- colnames(obj)
  genes <- rownames(counts)
  aligned <- align(counts, genes, cells)
  if (is.null(aligned)) {
    fail("the counts of assay '", assay_name, "' cover ", ncol(counts), " cells but the object has ",
         length(cells), "; subset the object in R so that all cells have counts")
  }
  counts <- aligned

  meta <- obj@meta.data
  meta <- meta[match(cells, rownames(meta)), , drop = FALSE]

  label_col <- opts[["label-col"]]
  label_key <- opts[["label-key"]]
  hek_from <- opts[["hek-from"]]
  hek_key <- opts[["hek-key"]]
  if (!is.null(label_col)) {
    check_column(meta, label_col, "--label-col")
    check_key(meta, label_key, label_col, "--label-key")
  }
  if (!is.null(hek_from)) {
    check_column(meta, hek_from, "--hek-from")
    check_key(meta, hek_key, hek_from, "--hek-key")
  }
  if (!is.null(opts[["hek-positive"]]) && is.null(hek_from)) {
    fail("--hek-positive needs --hek-from; pass --hek-from with the meta.data column it refers to")
  }
  if (!is.null(label_col)) {
    x <- meta[[label_col]]
    meta[[label_key]] <- if (is.factor(x)) x else factor(as.character(x))
  }
  if (!is.null(hek_from)) {
    meta[[hek_key]] <- hek_column(meta[[hek_from]], hek_from, opts[["hek-positive"]])
  }

  # Reductions: the default list is written where present; names given with --reductions must exist.
  available <- SeuratObject::Reductions(obj)
  explicit <- !is.null(opts[["reductions"]])
  wanted <- if (explicit) trimws(strsplit(opts[["reductions"]], ",", fixed = TRUE)[[1]]) else DEFAULT_REDUCTIONS
  wanted <- wanted[nzchar(wanted) & wanted != "none"]
  if (identical(wanted, "all")) wanted <- available
  missing <- setdiff(wanted, available)
  if (explicit && length(missing) > 0L) {
    fail("--reductions ", quote_all(missing), " not in the object; available: ", quote_all(available),
         ". Pass --reductions with some of them, 'all' or 'none'")
  }
  wanted <- intersect(wanted, available)

  data <- mats$data
  logcounts <- NULL
  if (!is.null(data) && all(dim(data) > 0L)) {
    data <- as_dgc(data, "data")
    data <- align(data, genes, cells)
    if (is.null(data)) {
      note("layers['logcounts'] not written: the data matrix does not cover the same genes and cells as counts")
    } else if (!same_matrix(counts, data)) {
      logcounts <- data
    }
  }

  # var: gene names, feature metadata and highly_variable.
  var <- tryCatch({
    fm <- obj[[assay_name]][[]]
    if (is.data.frame(fm) && nrow(fm) > 0L && !is.null(rownames(fm))) {
      fm[match(genes, rownames(fm)), , drop = FALSE]
    } else NULL
  }, error = function(e) NULL)
  if (is.null(var)) var <- data.frame(row.names = make.unique(genes))
  hvg <- tryCatch(SeuratObject::VariableFeatures(obj, assay = assay_name), error = function(e) character(0))
  if (length(hvg) > 0L && !"highly_variable" %in% names(var)) var[["highly_variable"]] <- genes %in% hvg

  n_obs <- length(cells)
  n_vars <- length(genes)
  all_integer <- length(counts@x) == 0L ||
    (all(counts@x == round(counts@x)) && max(abs(counts@x)) < 2^24)
  counts_type <- if (all_integer) hdf5r::h5types$H5T_NATIVE_FLOAT else hdf5r::h5types$H5T_NATIVE_DOUBLE

  tmp <- file.path(out_dir, paste0(".", basename(output), ".tmp-", Sys.getpid()))
  on.exit(if (file.exists(tmp)) unlink(tmp), add = TRUE)
  f <- hdf5r::H5File$new(tmp, mode = "w")
  closed <- FALSE
  on.exit(if (!closed) try(f$close_all(), silent = TRUE), add = TRUE, after = FALSE)
  set_encoding(f, "anndata", "0.1.0")

  write_csr(f, "X", counts, n_obs, n_vars, counts_type)
  layers <- empty_dict(f, "layers")
  if (!is.null(logcounts)) {
    write_csr(layers, "logcounts", logcounts, n_obs, n_vars, hdf5r::h5types$H5T_NATIVE_DOUBLE)
  }
  layers$close()

  obs_cols <- write_dataframe(f, "obs", meta, cells, "meta.data")
  write_dataframe(f, "var", var, genes, "feature")

  obsm <- empty_dict(f, "obsm")
  for (r in wanted) {
    emb <- SeuratObject::Embeddings(obj, reduction = r)
    emb <- emb[match(cells, rownames(emb)), , drop = FALSE]
    if (anyNA(rownames(emb))) {
      note("obsm['X_", r, "'] not written: reduction '", r, "' does not cover all cells")
      wanted <- setdiff(wanted, r)
      next
    }
    # hdf5r reverses dimensions: writing t(emb) gives a cells x dims dataset.
    d <- obsm$create_dataset(paste0("X_", r), robj = t(unname(emb)),
                             dtype = hdf5r::h5types$H5T_NATIVE_DOUBLE)
    set_encoding(d, "array", "0.2.0")
    d$close()
  }
  obsm$close()
  for (g in c("varm", "obsp", "varp", "uns")) empty_dict(f, g)$close()
  f$close_all()
  closed <- TRUE

  # rename() replaces an existing file in one step on POSIX; elsewhere remove it first.
  if (!suppressWarnings(file.rename(tmp, output))) {
    if (file.exists(output)) unlink(output)
    if (!file.rename(tmp, output)) fail("cannot move the written file to --output '", output, "'; check its folder is writable")
  }

  cat(sprintf("wrote %s: %d cells x %d genes; X = counts (%s)%s; obsm: %s; obs: %d columns\n",
              output, n_obs, n_vars, assay_name,
              if (is.null(logcounts)) "" else ", layers['logcounts'] = data",
              if (length(wanted)) paste0("X_", wanted, collapse = ", ") else "(none)",
              length(obs_cols)))
  invisible(output)
}

main <- function() {
  args <- commandArgs(trailingOnly = TRUE)
  status <- tryCatch({
    opts <- parse_args(args)
    if (isTRUE(opts[["help"]])) {
      cat(USAGE, "\n")
    } else {
      export_seurat(opts)
    }
    0L
  }, error = function(e) {
    msg <- gsub("[\r\n]+", " ", conditionMessage(e))
    if (!inherits(e, "export_error")) msg <- paste0("unexpected error: ", msg)
    cat("export_seurat: error: ", msg, "\n", sep = "", file = stderr())
    1L
  })
  quit(save = "no", status = status)
}

if (!interactive()) main()
