"""The docs as a reader meets them: one repository address, install cells that run anywhere, the navigation's order,
the analysis notebook's defaults shared with scaml_report, and the README's links."""
from __future__ import annotations

import configparser
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import repo_url  # noqa: E402

TUTORIALS = sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


def test_repository_address_in_one_place():
    "Every Colab badge, install cell and repository link agrees with settings.ini's git_url and branch."
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "repo_url.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    url, branch = _settings()["git_url"], _settings()["branch"]
    slug = url.removeprefix("https://github.com/")
    for nb in TUTORIALS:
        text = nb.read_text()
        assert f"https://colab.research.google.com/github/{slug}/blob/{branch}/nbs/tutorials/{nb.name}" in text, nb.name
        assert f"git+{url}@{branch}" in text, nb.name


def test_rewrite_follows_settings(monkeypatch):
    "A new git_url reaches badges, install cells and repository links, and leaves other projects' links alone."
    monkeypatch.setattr(repo_url, "settings", lambda: ("https://github.com/lab/scaml", "lab/scaml", "dev"))
    text = ('[![c](https://colab.research.google.com/assets/colab-badge.svg)]'
            '(https://colab.research.google.com/github/scaml/scaml/blob/main/nbs/tutorials/actinn.ipynb)\n'
            'pip_install("scaml[torch] @ git+https://github.com/scaml/scaml@main")\n'
            'href: "https://github.com/scaml/scaml"\n'
            'see https://github.com/deepchem/deepchem and https://github.com/mafeiyang/ACTINN)\n')
    out = repo_url.rewrite(text)
    assert "colab.research.google.com/github/lab/scaml/blob/dev/nbs/tutorials/actinn.ipynb" in out
    assert 'git+https://github.com/lab/scaml@dev"' in out
    assert 'href: "https://github.com/lab/scaml"' in out
    assert "https://github.com/deepchem/deepchem" in out and "https://github.com/mafeiyang/ACTINN" in out
    assert repo_url.rewrite(out) == out


def test_install_cells_are_python_and_guarded():
    """Each tutorial's install cell is plain Python (no `!` shell line, so it runs under any kernel), installs scaml
    only where it is missing, and treats DeepChem as optional: a failed install prints a message instead of raising."""
    for nb in TUTORIALS:
        cell = next(c for c in _cells(nb) if c["cell_type"] == "code" and "pip_install" in "".join(c["source"]))
        src = "".join(cell["source"])
        compile(src, nb.name, "exec")
        assert 'find_spec("scaml") is None' in src
        if "deepchem" in src:
            assert "--ignore-requires-python" in src and "print(" in src, "DeepChem must be optional on Python 3.12"


def test_tutorials_before_the_api():
    "The sidebar lists the tutorials before the API reference, and the navbar's Tutorials link opens their index."
    contents = yaml.safe_load((ROOT / "nbs" / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    sections = [c["section"] if isinstance(c, dict) else c for c in contents]
    assert sections.index("Tutorials") < sections.index("API reference"), sections
    tut = next(c for c in contents if isinstance(c, dict) and c["section"] == "Tutorials")["contents"]
    assert tut[0] == "tutorials.ipynb" and {f"tutorials/{p.name}" for p in TUTORIALS} <= set(tut)
    nav = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())["website"]["navbar"]["left"]
    hrefs = {n["text"]: n["href"] for n in nav}
    assert hrefs["Tutorials"] == "tutorials.ipynb" and (ROOT / "nbs" / "tutorials.ipynb").exists()
    labels = [n["text"] for n in nav]
    assert labels.index("Tutorials") < labels.index("API reference")


def test_analysis_notebook_shares_the_report_defaults():
    "The analysis notebook's parameters default to what scaml_report passes (and run_benchmark uses)."
    from scaml.benchmark import run_benchmark
    from scaml.report import run_report
    cell = next(c for c in _cells(ROOT / "nbs" / "analysis" / "cross_batch.ipynb")
                if "parameters" in c["metadata"].get("tags", []))
    params: dict = {}
    exec("".join(cell["source"]), params)
    report = inspect.signature(run_report).parameters
    bench = inspect.signature(run_benchmark).parameters
    assert list(params["models"]) == list(report["models"].default) == list(bench["models"].default)
    from scaml.core import DEFAULT_N_TOP_GENES
    assert params["n_top_genes"] == report["n_top_genes"].default == bench["n_top_genes"].default == DEFAULT_N_TOP_GENES
    assert params["random_state"] == report["random_state"].default


def test_readme_links_work_on_the_repository_page():
    "The README's figure exists under nbs/, its notebook links point at the docs site, and both directions are shown."
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    local = [i for i in images if not i.startswith("http")]
    assert local and all((ROOT / i).is_file() for i in local), local
    assert not re.search(r"\]\((?!https?:)[^)]*\.ipynb\)", readme), "a relative notebook link does not work on GitHub"
    s = _settings()
    assert f"{s['doc_host']}{s['doc_baseurl']}/tutorials.html" in readme
    for words in ["FACS -> droplet", "droplet -> FACS", "0.960", "0.926", "0.840", "--n-top-genes", "--use-rep",
                  "OVERWRITE=1", "scaml_report", "scaml_export_seurat", "3.10", "3.12"]:
        assert words in readme, words
    assert "--n-hvg 3000" not in readme and "--embedding X_harmony)" not in readme
