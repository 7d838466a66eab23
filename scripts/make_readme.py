"""Write README.md from nbs/index.ipynb: markdown cells as they are, code cells as Python blocks with their text
output; cells marked `#| hide` are left out and `#|` directives dropped."""
import json
from pathlib import Path

root = Path(__file__).resolve().parents[1]
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
        parts.append(body)
    elif cell["cell_type"] == "code":
        parts.append(f"```python\n{body}\n```")
        text = "".join("".join(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
                       for o in cell.get("outputs", []) if o.get("output_type") in ("stream", "execute_result"))
        if text.strip(): parts.append(f"```\n{text.rstrip()}\n```")
(root / "README.md").write_text("\n\n".join(parts) + "\n")
