"""Write README.md from nbs/index.ipynb: markdown cells as they are, code cells as Python blocks with their text
output; cells marked `#| hide` are left out and `#|` directives dropped. Links to other notebooks point at their
pages on the docs site (`doc_host` + `doc_baseurl` of settings.ini) and images at their place under nbs/, so the
same links work on the docs' home page and on the repository's front page. First the repository address of
settings.ini (`git_url`, `branch`) is written into the notebooks that show it (scripts/repo_url.py)."""
import configparser
import json
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "scripts"))
from repo_url import sync  # noqa: E402

sync()
cfg = configparser.ConfigParser(delimiters=["="])
cfg.read(root / "settings.ini", encoding="utf-8")
site = cfg["DEFAULT"]["doc_host"].rstrip("/") + cfg["DEFAULT"].get("doc_baseurl", "").rstrip("/")


def relink(md: str) -> str:
    "Notebook links -> docs pages, `images/...` -> `nbs/images/...`; absolute links unchanged."
    md = re.sub(r"\]\((?![a-z]+:|#|/)([^)\s]+?)\.ipynb(#[^)\s]*)?\)", lambda m: f"]({site}/{m[1]}.html{m[2] or ''})", md)
    return re.sub(r"\]\((?![a-z]+:|/)(images/[^)\s]+)\)", r"](nbs/\1)", md)


nb = json.loads((root / "nbs" / "index.ipynb").read_text())
parts = []
for cell in nb["cells"]:
    src = "".join(cell["source"])
    lines = src.splitlines()
    directives = [ln for ln in lines if ln.startswith("#|")]
    if any(d.replace(" ", "") in ("#|hide", "#|include:false") for d in directives): continue
    body = "\n".join(ln for ln in lines if not ln.startswith("#|")).strip()
    if not body: continue
    if cell["cell_type"] == "markdown":
        parts.append(relink(body))
    elif cell["cell_type"] == "code":
        parts.append(f"```python\n{body}\n```")
        text = "".join("".join(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
                       for o in cell.get("outputs", []) if o.get("output_type") in ("stream", "execute_result"))
        if text.strip(): parts.append(f"```\n{text.rstrip()}\n```")
(root / "README.md").write_text("\n\n".join(parts) + "\n")
