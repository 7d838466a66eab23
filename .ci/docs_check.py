#!/usr/bin/env python
"""Build the docs pages without Quarto and check them in a headless browser.

1. nbdev's notebook processing for docs (what `nbdev_docs` does before `quarto render`): `_proc/` holds the processed
   notebooks, directives applied and `show_doc` cells executed.
2. Each processed notebook is rendered to one HTML page with nbconvert (title and summary from the front matter, a
   navigation bar from `nbs/sidebar.yml`, links between notebooks pointing at the rendered pages).
3. The notebooks behind the pages hold their results (the site shows the outputs saved in them, it does not run
   them): every demonstration cell has its output (`scripts/check_outputs.py`), the home page has a table of results
   that names the models `lr`, `rf`, `xgb` and `mlp`, and each tutorial at least one figure.
4. The pages are served on 127.0.0.1 and loaded in Debian's chromium, headless. In the browser: the page loads, its
   text has no raw `#|` directive and no Python traceback, every image is decoded (`naturalWidth > 0`), as many as
   the notebook has image outputs, and the key results of step 3 are on the page (the model table in a cell
   output, the figures). A screenshot of each page is saved.

Usage: `python .ci/docs_check.py [--out docs_check] [--pages NAME ...] [--chromium PATH] [--no-browser]`; exits 1 on
any failure. Writes `<out>/site/` (the pages), `<out>/screenshots/*.png` and `<out>/report.json`. `--no-browser` does
steps 1-3 only (where chromium is not installed: .ci/install_chromium.sh).
"""
from __future__ import annotations

import argparse
import functools
import glob
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
sys.path.insert(0, str(ROOT / "scripts"))
import check_outputs  # noqa: E402
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--disable-dev-shm-usage"]
RESULT_ID = "scaml-docs-check"
IMAGE_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
# pages that must be on the site, with the least number of figures each must show
# (every page under tutorials/ must show at least one figure)
REQUIRED = {"index.ipynb": 0, "getting_started.ipynb": 1, "gallery.ipynb": 3, "18a_report.ipynb": 0,
            "tutorials/cross_batch.ipynb": 3, "tutorials/actinn.ipynb": 1, "analysis/cross_batch.ipynb": 0}
# words one cell output of the page must show together: the home page's table of results names every default model
KEY_RESULTS = {"index.ipynb": ["lr", "rf", "xgb", "mlp"]}


def min_figures(page: str) -> int:
    return max(REQUIRED.get(page, 0), 1 if page.startswith("tutorials/") else 0)


def _has_words(text: str, words: list[str]) -> bool:
    return all(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words)


def notebook_problems(page: str) -> list[str]:
    """What the notebook behind `page` (relative to nbs/) lacks: outputs of demonstration cells, key results, figures.

    Analysis notebooks (papermill, committed unexecuted) are not checked."""
    path = NBS / page
    if not path.is_file() or page.split("/")[0] in check_outputs.UNEXECUTED: return []
    problems = [ln.split(": ", 1)[1] for ln in check_outputs.report([path])]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    outs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    n_fig = sum(1 for o in outs if any(k.startswith("image/") for k in o.get("data", {})))
    if n_fig < min_figures(page):
        problems.append(f"the notebook has {n_fig} figure outputs, the page must show >= {min_figures(page)}")
    words = KEY_RESULTS.get(page)
    if words:
        texts = ["".join(o.get("text", "")) + "".join("".join(v) for k, v in o.get("data", {}).items()
                                                     if k in ("text/plain", "text/html", "text/markdown")) for o in outs]
        if not any(_has_words(t, words) for t in texts):
            problems.append(f"no cell output is a table of results naming the models {', '.join(words)}")
    return problems

# Runs in the page: collect what the checks need once everything (images included) has loaded.
CHECK_JS = """
<script>
window.addEventListener('load', function () {
  // images from other hosts (badges) cannot load without network; they are listed, not checked
  var local = function (i) { return i.src.startsWith(location.origin) || i.src.startsWith('data:'); };
  var external = Array.from(document.images).filter(function (i) { return !local(i); });
  var imgs = Array.from(document.images).filter(local);
  var text = document.body.innerText;
  var res = {
    ready: document.readyState,
    title: (document.querySelector('h1') || {}).innerText || '',
    n_img: imgs.length,
    outputs: Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(function (e) { return e.innerText.slice(0, 20000); }),
    img_ok: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    img_bad: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.src.slice(0, 80); }),
    directives: text.split('\\n').filter(function (l) { return /^\\s*#\\|/.test(l); }).slice(0, 5),
    tracebacks: (text.match(/Traceback \\(most recent call last\\)|\\w+Error: .*\\n.*File ".*", line \\d+/g) || []).length,
    external_img: external.map(function (i) { return i.src; }),
    colab: Array.from(document.links).map(function (a) { return a.href; })
      .filter(function (h) { return h.indexOf('colab.research.google.com') >= 0; }),
    n_chars: text.length
  };
  var pre = document.createElement('pre');
  pre.id = '""" + RESULT_ID + """';
  pre.style.display = 'none';
  pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
});
</script>
"""

NAV_CSS = """
<style>
  nav.scaml-nav { background: #2780e3; padding: 0.5rem 1rem; font-family: sans-serif; }
  nav.scaml-nav a { color: white; margin-right: 1.2rem; text-decoration: none; font-size: 0.95rem; }
  nav.scaml-nav a.brand { font-weight: bold; font-size: 1.1rem; }
  p.scaml-description { font-size: 1.2rem; font-style: italic; opacity: 0.7; }
  main.scaml-page { max-width: 1100px; margin: 0 auto; }
</style>
"""


PROC_ONE = """
import sys
from pathlib import Path
import nbdev.serve_drv
from nbdev.processors import FilterDefaults
nbdev.serve_drv.main((Path(sys.argv[1]), Path(sys.argv[2]), FilterDefaults))
"""


def _proc_one(job) -> str | None:
    "Process one notebook as nbdev's `proc_nbs` does, in a fresh interpreter; returns the error text, or None."
    src, dst, _ = job
    p = subprocess.run([sys.executable, "-c", PROC_ONE, str(src), str(dst)], capture_output=True, text=True,
                       cwd=src.parent, timeout=600)
    if p.returncode == 0: return None
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Exception: Error in notebook")), max(len(lines) - 12, 0))
    return "\n  ".join(lines[start:start + 30])


def process_notebooks(only: list[str] | None = None) -> tuple[Path, dict[str, str]]:
    """nbdev's docs processing of `nbs/` (what `nbdev_docs` runs before `quarto render`; no Quarto needed).

    Returns the `_proc` folder and {notebook: error} for the notebooks whose docs cells failed."""
    from concurrent.futures import ThreadPoolExecutor

    import nbdev.doclinks
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import _proc_file
    from nbdev.doclinks import nbglob
    os.chdir(ROOT)
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    cache = get_config().config_path / "_proc"
    if not only: shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(exist_ok=True)
    files = list(nbglob(NBS, func=Path, file_glob="", file_re="", skip_file_re="^[_.]", skip_folder_re="^[_.]"))
    files += [NBS / f for f in ("_quarto.yml", "nbdev.yml", "sidebar.yml", "styles.css") if (NBS / f).exists()]
    if only: files = [f for f in files if f.suffix != ".ipynb" or any(o in str(f.relative_to(NBS)) for o in only)]
    for f in files:
        d = cache / f.relative_to(NBS)
        if d.exists(): d.unlink()
    jobs = [j for j in (_proc_file(f, cache=cache, path=NBS) for f in files) if j]
    with ThreadPoolExecutor(max_workers=2) as ex:
        errs = dict(zip((str(j[0].relative_to(NBS)) for j in jobs), ex.map(_proc_one, jobs)))
    return cache, {k: v for k, v in errs.items() if v}


def sidebar_pages() -> list[tuple[str, list[str]]]:
    """(section, [notebook paths relative to nbs/]) in the order of `nbs/sidebar.yml`, globs expanded."""
    import yaml
    spec = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]

    def expand(items) -> list[str]:
        items = [items] if isinstance(items, str) else items
        out = []
        for it in items:
            if isinstance(it, str):
                hits = sorted(str(Path(p).relative_to(NBS)) for p in glob.glob(str(NBS / it)))
                out += [h for h in hits if not Path(h).name.startswith("_")] or ([it] if "*" not in it else [])
        return out

    sections = []
    for item in spec:
        if isinstance(item, str): sections.append(("", expand(item)))
        else: sections.append((item["section"], expand(item["contents"])))
    return sections


def _front_matter(nb) -> dict:
    "Title and description from the raw front-matter cell nbdev writes (removed from the notebook)."
    import yaml
    for i, c in enumerate(nb.cells):
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            body = c.source.strip().strip("-").strip()
            del nb.cells[i]
            return yaml.safe_load(body) or {}
    return {}


_re_opt = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def apply_cell_options(nb) -> None:
    """Apply the Quarto cell options nbdev leaves in processed notebooks (`#| echo: false`, `#| output: asis`,
    `#| include: false`, `#| output: false`) and strip them from the source, as `quarto render` does."""
    cells = []
    for c in nb.cells:
        if c.cell_type != "code":
            cells.append(c); continue
        lines, opts = c.source.splitlines(), {}
        while lines and _re_opt.match(lines[0]):
            k, v = _re_opt.match(lines.pop(0)).groups()
            opts[k] = v.strip().strip("'\"").lower()
        c.source = "\n".join(lines)
        if opts.get("include") == "false": continue
        if opts.get("output") == "false": c.outputs = []
        if opts.get("output") == "asis":
            for o in c.get("outputs", []):
                if o.get("output_type") in ("display_data", "execute_result") and "text/markdown" in o.get("data", {}):
                    o["data"] = {"text/markdown": o["data"]["text/markdown"]}
        if opts.get("echo") == "false": c.metadata.setdefault("transient", {})["remove_source"] = True
        cells.append(c)
    nb.cells = cells
    # Pandoc link attributes (`[source](url){target="_blank"}`) are Quarto syntax; plain Markdown shows them as text
    attrs = re.compile(r"(\]\([^)]*\))\{[^}]*\}")
    for c in nb.cells:
        if c.cell_type == "markdown": c.source = attrs.sub(r"\1", c.source)
        for o in c.get("outputs", []):
            if "text/markdown" in o.get("data", {}):
                o["data"]["text/markdown"] = attrs.sub(r"\1", "".join(o["data"]["text/markdown"]))


def render_page(src: Path, dst: Path, nav: str, rel: str) -> int:
    """Render one processed notebook to `dst`; returns the number of image outputs it holds."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(src, as_version=4)
    fm = _front_matter(nb)
    apply_cell_options(nb)
    n_images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if any(k.startswith("image/") for k in o.get("data", {})))
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": fm.get("title", src.stem)}})
    # no network here: drop the CDN scripts (require.js, MathJax) the template links
    body = re.sub(r'<script[^>]+src="https?://[^"]*"[^>]*>\s*</script>', "", body)
    body = re.sub(r'href="(?!https?:)([^"#]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"',
                  body)
    up = "../" * rel.count("/")
    head = NAV_CSS + CHECK_JS
    title = ""
    if fm.get("title"):
        title = f'<h1>{html.escape(str(fm["title"]))}</h1>'
        if fm.get("description"): title += f'<p class="scaml-description">{html.escape(str(fm["description"]))}</p>'
    body = body.replace("</head>", head + "</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav.replace('href="/', f'href="{up}') +
                  f'<main class="scaml-page">{title}', body, count=1)
    body = body.replace("</body>", "</main></body>", 1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body, encoding="utf-8")
    return n_images


def build_site(proc: Path, site: Path, only: list[str] | None, skip: set[str] = frozenset()) -> dict[str, int]:
    """Render the sidebar's pages into `site`; returns {page: number of image outputs}."""
    shutil.rmtree(site, ignore_errors=True)
    sections = sidebar_pages()
    first = {s: p[0] for s, p in sections if s and p}
    top = [p for s, ps in sections if not s for p in ps if Path(p).stem != "index"]
    links = ['<a class="brand" href="/index.html">scaml</a>'] + [
        f'<a href="/{Path(p).with_suffix(".html")}">{Path(p).stem.replace("_", " ").capitalize()}</a>' for p in top] + [
        f'<a href="/{Path(p).with_suffix(".html")}">{html.escape(s)}</a>' for s, p in first.items()]
    nav = f'<nav class="scaml-nav">{"".join(links)}</nav>'
    pages = {}
    for _, files in sections:
        for rel in files:
            if (only and not any(o in rel for o in only)) or rel in skip: continue
            src = proc / rel
            if not src.is_file():
                print(f"skip {rel}: not in {proc} (not processed)")
                continue
            pages[rel] = render_page(src, site / Path(rel).with_suffix(".html"), nav, rel)
    # the static images that markdown cells show (e.g. nbs/images/), at the same paths, as Quarto copies them
    for f in NBS.rglob("*"):
        parts = f.relative_to(NBS).parts
        if f.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(("_", ".")) for p in parts):
            (site / f.relative_to(NBS)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, site / f.relative_to(NBS))
    return pages


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(site))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def chromium(exe: str, url: str, *extra: str, timeout: int = 90) -> str:
    with tempfile.TemporaryDirectory(prefix="scaml-chromium-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0: raise RuntimeError(f"chromium exited {p.returncode} on {url}: {p.stderr[-2000:]}")
    return p.stdout


def check_page(exe: str, base: str, rel: str, n_expected: int, shots: Path) -> dict:
    url = f"{base}/{Path(rel).with_suffix('.html')}"
    shot = shots / (rel.replace("/", "__").removesuffix(".ipynb") + ".png")
    dom = chromium(exe, url, "--window-size=1280,1800", f"--screenshot={shot}", "--dump-dom")
    m = re.search(rf'<pre id="{RESULT_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    res = json.loads(html.unescape(m.group(1))) if m else {}
    problems = []
    if not m: problems.append("the page did not finish loading (no check result in the DOM)")
    else:
        if res["ready"] != "complete": problems.append(f"document.readyState={res['ready']}")
        if not res["title"].strip(): problems.append("no <h1> title")
        if res["directives"]: problems.append(f"raw directives in the text: {res['directives']}")
        if res["tracebacks"]: problems.append(f"{res['tracebacks']} Python traceback(s) in the outputs")
        if res["img_ok"] != res["n_img"]: problems.append(f"images not decoded: {res['img_bad']}")
        want = f"colab.research.google.com/github/scaml/scaml/blob/main/nbs/{rel}"
        if rel.startswith("tutorials/") and not any(h.endswith(want) for h in res["colab"]):
            problems.append(f"no 'Open in Colab' link to {want}")
        if res["img_ok"] < n_expected:
            problems.append(f"{res['img_ok']} images shown, the notebook has {n_expected} image outputs")
        words = KEY_RESULTS.get(rel)
        if words and not any(_has_words(t, words) for t in res["outputs"]):
            problems.append(f"no cell output on the page names the models {', '.join(words)}")
        res["outputs"] = len(res["outputs"])
    if not shot.is_file() or shot.stat().st_size < 5000: problems.append("no screenshot")
    return {"page": rel, "url": url, "images_expected": n_expected, **res, "screenshot": str(shot),
            "problems": problems}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs_check"), help="output folder (site, screenshots, report.json)")
    ap.add_argument("--pages", nargs="*", help="check only pages whose path contains one of these strings")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                    help="chromium executable")
    ap.add_argument("--skip-proc", action="store_true", help="reuse an existing _proc/ folder")
    ap.add_argument("--no-browser", action="store_true", help="build the pages and check the notebooks, without chromium")
    args = ap.parse_args(argv)
    if not args.chromium and not args.no_browser:
        print("error: chromium not found; install it with .ci/install_chromium.sh (or pass --no-browser)", file=sys.stderr)
        return 1
    out = Path(args.out)
    t0 = time.perf_counter()
    proc, proc_errors = (ROOT / "_proc", {}) if args.skip_proc else process_notebooks(args.pages)
    print(f"processed notebooks into {proc} in {time.perf_counter() - t0:.0f}s")
    for nb, err in proc_errors.items():
        print(f"FAIL {nb}: nbdev's docs processing failed (a cell the docs build runs raised):\n  {err}")
    t = time.perf_counter()
    pages = build_site(proc, out / "site", args.pages, skip=set(proc_errors))
    print(f"rendered {len(pages)} pages into {out / 'site'} in {time.perf_counter() - t:.0f}s")
    shots = out / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    results = []
    srv, base = serve(out / "site") if not args.no_browser else (None, "")
    try:
        for rel, n in pages.items():
            static = notebook_problems(rel)
            if args.no_browser: r = {"page": rel, "images_expected": n, "img_ok": n, "problems": static}
            else:
                r = check_page(args.chromium, base, rel, n, shots)
                r["problems"] = static + r["problems"]
            results.append(r)
            status = "ok  " if not r["problems"] else "FAIL"
            print(f"{status} {rel:40s} {r.get('img_ok', 0):3d}/{r.get('n_img', n):<3d} images")
            for prob in r["problems"]: print(f"       nbs/{rel}: {prob}")
    finally:
        if srv: srv.shutdown()
    n_checked = len(results)
    results += [{"page": nb, "problems": [f"docs processing failed: {err}"]} for nb, err in proc_errors.items()]
    if not args.pages:
        by_page = {r["page"]: r for r in results}
        for page in sorted(set(REQUIRED) | {p for p in by_page if p.startswith("tutorials/")}):
            n, r = min_figures(page), by_page.get(page)
            if r is None: results.append({"page": page, "problems": ["missing from the site (nbs/sidebar.yml)"]})
            elif r.get("img_ok", 0) < n and not args.no_browser:
                r["problems"].append(f"shows {r.get('img_ok', 0)} figures, expected >= {n}")
                print(f"FAIL {page:40s} {r['problems'][-1]}")
        for r in results[n_checked:]: print(f"FAIL {r['page']:40s} {'; '.join(r['problems'])}")
    (out / "report.json").write_text(json.dumps(results, indent=1))
    bad = [r for r in results if r["problems"]]
    print(f"{len(results) - len(bad)} of {len(results)} pages pass"
          + (f"; screenshots in {shots}" if not args.no_browser else " (notebook checks only, no browser)")
          + f" ({time.perf_counter() - t0:.0f}s)")
    if any("has no saved output" in p for r in bad for p in r["problems"]):
        print("the site shows the outputs saved in the notebooks: run scripts/run_notebooks.sh on the notebooks above "
              "and commit them")
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
