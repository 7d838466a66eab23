"""Run every tutorial (nbs/tutorials/*.ipynb) top to bottom as a reader meets it in Colab: scaml installed from a
built wheel (not editable, not this checkout) into a fresh virtual environment, no `../shared` beside it, no
`SCAML_DATA_DIR`, an empty download cache, and the data downloaded over HTTP.

    python scripts/check_tutorials.py                      every tutorial
    python scripts/check_tutorials.py nbs/tutorials/actinn.ipynb
    PYTHON=python3.12 python scripts/check_tutorials.py    the environment on another interpreter (3.10-3.12)
    KEEP=1 python scripts/check_tutorials.py               keep the work folder (executed notebooks, logs)

Steps, each timed: build the wheel (`pip wheel . --no-deps`); create the venv (no system site packages); install
torch==2.13.0 first (from the local wheel folder where pip finds one, else the CPU index), then the wheel, then
papermill and ipykernel; start `http.server` on 127.0.0.1 serving a mirror of the dataset files in the layout of
`SCAML_DATA_DIR` (`<dataset folder>/original/<file>` and the built `.h5ad`) and point `SCAML_DATA_URL` at it; run
each tutorial with papermill in a folder outside the repository. The tutorials' install cells run as they are: they
find scaml installed (by the wheel) and install only DeepChem, the optional extra, or say why they skip it.

The dataset files come from `SCAML_MIRROR_SOURCE` (default `../shared/data`, the maintainers' copy); the machine
needs no internet for the data. The Python packages come from pip's configured index. Run it with the development
environment's Python (it reads the built datasets with anndata to write the mirror).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]
timings: list[tuple[str, float]] = []


def timed(name, fn, *a, **kw):
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    out = fn(*a, **kw)
    timings.append((name, time.perf_counter() - t0))
    print(f"   {timings[-1][1]:.0f} s", flush=True)
    return out


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], **kw)


def build_wheel(dist: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", dist], cwd=root)
    return next(dist.glob("scaml-*.whl"))


def make_venv(venv: Path, wheel: Path) -> Path:
    py = os.environ.get("PYTHON", "python3")
    base = run([py, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
               capture_output=True, text=True).stdout.strip()
    run([base, "-m", "venv", venv])          # a plain venv: no --system-site-packages
    vpy = venv / "bin" / "python"
    pip = [vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # torch first, the CPU build: the local wheel folder has it here; elsewhere the CPU index (never the CUDA build)
    if run([*pip, "torch==2.13.0"], check=False).returncode != 0:
        run([*pip, "torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"])
    run([*pip, f"{wheel}[torch]"])
    run([*pip, "papermill", "ipykernel"])
    return vpy


def make_mirror(mirror: Path, source: Path) -> None:
    """The dataset files in the layout `SCAML_DATA_URL` points at (`<dataset folder>/original/<file>`, beside the built
    `.h5ad`): scripts/data_mirror.py's mirror where the checkout has it; else links to the source files, and the ACTINN
    droplet matrix (`train_set.csv.gz`, which the maintainers' copy does not keep) written back from the built
    dataset."""
    if (root / "scripts" / "data_mirror.py").exists():
        sys.path[:0] = [str(root / "scripts"), str(root)]     # this checkout's scaml registry
        import data_mirror
        data_mirror.write_mirror(source, mirror)
        return
    for ds_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        for f in ds_dir.rglob("*"):
            if f.is_file() and f.suffix in (".h5ad", ".h5", ".txt", ".gz", ".csv", ".rda", ".rds", ".mtx", ".tsv"):
                dest = mirror / f.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.symlink_to(f)
    csv = mirror / "actinn_tm_droplet" / "original" / "train_set.csv.gz"
    h5ad = source / "actinn_tm_droplet" / "actinn_tm_droplet.h5ad"
    if not csv.exists() and h5ad.exists():
        import anndata
        import pandas as pd
        a = anndata.read_h5ad(h5ad)
        df = pd.DataFrame(a.X.T.toarray().astype("int64"), index=a.var_names, columns=a.obs_names)
        df.to_csv(csv, compression={"method": "gzip", "compresslevel": 1})


# Until scaml.datasets reads SCAML_DATA_URL, a hook in the check's environment sends its downloads of registered
# files to the mirror (the same URL -> mirror mapping); scaml's own download, checksum and rebuild code still runs.
SHIM = '''
import os, urllib.request
_urlopen = urllib.request.urlopen
def _mirror(url, *a, **kw):
    base = os.environ.get("SCAML_DATA_URL")
    u = getattr(url, "full_url", url)
    if base and isinstance(u, str):
        from pathlib import PurePosixPath
        from scaml.datasets import DATASETS
        for ds in DATASETS.values():
            for src in ds.files:
                if src.url == u:
                    url = f"{base.rstrip('/')}/{PurePosixPath(ds.path).parent}/original/{src.name}"
    return _urlopen(url, *a, **kw)
urllib.request.urlopen = _mirror
'''


def install_shim(vpy: Path) -> bool:
    "Install the download hook when the installed scaml has no `SCAML_DATA_URL`; True if it did."
    src = run([vpy, "-c", "import inspect, scaml.datasets as d; print(inspect.getsource(d))"],
              capture_output=True, text=True).stdout
    if "SCAML_DATA_URL" in src: return False
    site = Path(run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    capture_output=True, text=True).stdout.strip())
    (site / "_scaml_check_mirror.py").write_text(SHIM)
    (site / "_scaml_check_mirror.pth").write_text("import _scaml_check_mirror\n")
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(nbs: list[Path]) -> int:
    source = Path(os.environ.get("SCAML_MIRROR_SOURCE", root.parent / "shared" / "data")).resolve()
    if not source.is_dir():
        sys.exit(f"no dataset files to serve at '{source}': set SCAML_MIRROR_SOURCE to a folder laid out as SCAML_DATA_DIR")
    work = Path(tempfile.mkdtemp(prefix="scaml-tutorials-"))
    print(f"work folder: {work}")
    t_all = time.perf_counter()
    wheel = timed("build the wheel", build_wheel, work / "dist")
    vpy = timed("fresh venv: torch==2.13.0 (CPU), the wheel, papermill, ipykernel", make_venv, work / "venv", wheel)
    timed("dataset mirror", make_mirror, work / "mirror", source)
    shim = install_shim(vpy)
    if shim:
        print("NOTE: the installed scaml does not read SCAML_DATA_URL; its downloads are sent to the mirror by a hook "
              "installed in the check's environment only")
    port = free_port()
    server = subprocess.Popen([vpy, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", work / "mirror"],
                              stdout=subprocess.DEVNULL, stderr=(work / "http.log").open("w"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCAML_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV", "SCAML_VENV", "MPLBACKEND")}
    env.update(PATH=f"{vpy.parent}:/usr/local/bin:/usr/bin:/bin", SCAML_CACHE=str(work / "cache"),
               SCAML_DATA_URL=f"http://127.0.0.1:{port}", JUPYTER_DATA_DIR=str(work / "jupyter"),
               JUPYTER_CONFIG_DIR=str(work / "jupyter-config"), IPYTHONDIR=str(work / "ipython"))
    failed = []
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
            except OSError: time.sleep(0.1)
        where = run([vpy, "-c", "import scaml; print(scaml.__file__)"], env=env, cwd=work, capture_output=True, text=True)
        assert str(work / "venv") in where.stdout, f"scaml is not imported from the wheel: {where.stdout}{where.stderr}"
        run([vpy, "-m", "ipykernel", "install", "--prefix", work / "venv", "--name", "scaml-check"], env=env,
            stdout=subprocess.DEVNULL)
        for nb in nbs:
            rundir = work / "run" / nb.stem
            rundir.mkdir(parents=True)
            shutil.copy(nb, rundir / nb.name)
            out = work / "out" / nb.name
            out.parent.mkdir(exist_ok=True)
            r = timed(f"tutorial {nb.relative_to(root)}", run,
                      [vpy, "-m", "papermill", rundir / nb.name, out, "-k", "scaml-check", "--cwd", rundir,
                       "--no-progress-bar", "--log-level", "WARNING"], env=env, check=False)
            if r.returncode != 0: failed.append(nb.relative_to(root)); continue
            cells = json.loads(out.read_text())["cells"]
            text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
            for line in text.splitlines():
                if "DeepChem" in line or "actinn" in line.lower() and "accuracy" in line: print(f"   | {line}")
    finally:
        server.terminate(); server.wait()
    served = sum(1 for ln in (work / "http.log").read_text().splitlines() if '"GET ' in ln and " 200 " in ln)
    print(f"\nfiles served over HTTP: {served}; cache now holds {sum(1 for p in (work / 'cache').rglob('*') if p.is_file())} files")
    total = time.perf_counter() - t_all
    print("\n== wall times")
    for name, s in timings: print(f"{s:7.0f} s  {name}")
    print(f"{total:7.0f} s  in all")
    if failed:
        print(f"FAILED: {', '.join(map(str, failed))} (executed notebooks in {work / 'out'})")
    if failed or os.environ.get("KEEP"): print(f"work folder kept: {work}")
    else: shutil.rmtree(work, ignore_errors=True)
    if served == 0 and not failed:
        print("FAILED: no file was downloaded over HTTP", file=sys.stderr); return 1
    return 1 if failed else 0


if __name__ == "__main__":
    args = [Path(a).resolve() for a in sys.argv[1:]] or sorted((root / "nbs" / "tutorials").glob("*.ipynb"))
    sys.exit(main(args))
