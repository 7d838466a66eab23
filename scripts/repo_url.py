"""The repository address lives in one place, `git_url` (and `branch`) in settings.ini. This writes it wherever the
docs and notebooks need it: the Colab badges and install cells of the tutorials, the badges and install commands of
nbs/index.ipynb (and so of the README), nbs/tutorials.ipynb and nbs/getting_started.ipynb, and the GitHub links of the
docs' configuration (nbs/_quarto.yml, nbs/nbdev.yml).

    python scripts/repo_url.py            rewrite the files that disagree with settings.ini and list them
    python scripts/repo_url.py --check    list them and exit 1 if any disagree, changing nothing

`scripts/make_readme.py` calls `sync()` first, so the sync check (`nbdev_export && nbdev_clean && python
scripts/make_readme.py` leaves `git status` clean) fails when an address was edited by hand.
"""
import configparser
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
GH = r"https://github\.com/[\w.-]+/[\w.-]+?"


def settings() -> tuple[str, str, str]:
    "(git_url, owner/name, branch) from settings.ini."
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(root / "settings.ini", encoding="utf-8")
    url = cfg["DEFAULT"]["git_url"].rstrip("/").removesuffix(".git")
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url)
    if not m:
        sys.exit(f"settings.ini: git_url={url!r} is not a https://github.com/OWNER/NAME address; Colab needs one")
    return url, m.group(1), cfg["DEFAULT"].get("branch", "main")


def rewrite(text: str) -> str:
    "`text` with every Colab link, pip install address and GitHub repository link pointing at settings.ini's."
    url, slug, branch = settings()
    text = re.sub(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/",
                  f"https://colab.research.google.com/github/{slug}/blob/{branch}/", text)
    text = re.sub(rf"git\+{GH}(?:\.git)?(?:@[\w.-]+)?(?=[\"' \]\\])", f"git+{url}@{branch}", text)
    # links into the repository (its pages, files and issues), not other projects' repositories
    name = slug.split("/")[1].lower()
    text = re.sub(rf"{GH}(?=/(?:blob|tree|issues)/|[)\"'\s])",
                  lambda m: url if m.group(0).rsplit("/", 1)[1].lower() == name else m.group(0), text)
    return text


def targets() -> list[Path]:
    return [root / "nbs" / "index.ipynb", root / "nbs" / "tutorials.ipynb", root / "nbs" / "getting_started.ipynb",
            root / "nbs" / "_quarto.yml", root / "nbs" / "nbdev.yml",
            *sorted((root / "nbs" / "tutorials").glob("*.ipynb"))]


def sync(check: bool = False) -> list[Path]:
    "Rewrite (or, with `check`, only find) the files whose repository address differs from settings.ini's."
    changed = []
    for p in targets():
        old = p.read_text(encoding="utf-8")
        new = rewrite(old)
        if new != old:
            changed.append(p)
            if not check: p.write_text(new, encoding="utf-8")
    return changed


if __name__ == "__main__":
    check = "--check" in sys.argv[1:]
    changed = sync(check=check)
    for p in changed: print(f"{'differs from settings.ini' if check else 'rewritten'}: {p.relative_to(root)}")
    sys.exit(1 if check and changed else 0)
