"""Render the README's results table from ``results/*.json`` (default profile only).

Each results file (written by :func:`searchtune_utils.config.save_results`) holds
``metrics = {system: {metric: value}}``; an optional ``readme_systems`` list picks the rows shown.
Run ``python -m searchtune_utils.report`` (``make report``) after the notebooks ran.
"""
from __future__ import annotations

import json

from .config import RESULTS_DIR, ROOT, atomic_write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_table() -> str:
    """Markdown table: one row per (notebook, system), one column per metric, values ×100."""
    files = sorted(p for p in RESULTS_DIR.glob("*.json") if p.stem.count(".") == 0)
    rows, columns = [], []
    for path in files:
        res = json.loads(path.read_text(encoding="utf-8"))
        systems = res.get("readme_systems") or list(res["metrics"])
        for system in systems:
            vals = res["metrics"][system]
            for m in vals:
                if m not in columns and isinstance(vals[m], (int, float)):
                    columns.append(m)
            rows.append((res["notebook"], system, vals, res.get("machine", {}).get("device", "?"),
                         res.get("date", "")))
    if not rows:
        return "_No results yet: run `make run`._\n"
    head = "| notebook | system | " + " | ".join(columns) + " | measured on |\n"
    head += "|---|---|" + "---:|" * len(columns) + "---|\n"
    body = ""
    for nb, system, vals, device, date in rows:
        cells = [f"{100 * vals[c]:.1f}" if isinstance(vals.get(c), (int, float)) else "" for c in columns]
        body += f"| {nb} | {system} | " + " | ".join(cells) + f" | {device}, {date} |\n"
    return head + body + "\nScores ×100 on the test split of the built-in dataset (`cpu` profile).\n"


def update_readme(path=ROOT / "README.md") -> bool:
    """Replace the block between the results markers in the README; False when markers are absent."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(path, f"{head}{START}\n{results_table()}{END}{tail}")
    return True


if __name__ == "__main__":
    print("README results table updated" if update_readme() else "README has no results markers")
