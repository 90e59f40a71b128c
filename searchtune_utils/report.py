"""Render the README's results table from ``results/*.json`` (default profile only).

Each results file (written by :func:`searchtune_utils.config.save_results`) holds
``metrics = {system: {metric: value}}``; an optional ``readme_systems`` list picks the rows shown.
Run ``python -m searchtune_utils.report`` (``make report``) after the notebooks ran;
``--record-smoke`` writes ``results/smoke_rehearsal.json`` after a smoke rehearsal (:func:`record_smoke`),
``--record-workshop`` ``results/workshop_rehearsal.json`` after a workshop rehearsal (:func:`record_workshop`);
``--record-precision COMMIT`` writes ``results/precision.json``, the bf16 runs against the fp32 runs
committed at COMMIT (:func:`record_precision`).
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .config import BUILT_IN_DATASETS, DEFAULT_DATASET, RESULTS_DIR, ROOT, atomic_write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"
NB_START, NB_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"


def _minutes(seconds) -> str:
    return f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else "not measured yet"


def _seconds(path) -> float | None:
    """A results file's measured notebook time in seconds, or None."""
    if not path.exists():
        return None
    timings = json.loads(path.read_text(encoding="utf-8")).get("timings", {})
    return timings.get("notebook total (s)", timings.get("notebook (s)"))


def notebooks_table(index=ROOT / "notebooks" / "index.toml") -> str:
    """Markdown table of the notebooks from ``notebooks/index.toml`` and the measured wall times
    in ``results/<notebook>.json`` (cpu) and ``results/<notebook>.gpu.json`` (gpu)."""
    entries = tomllib.loads(index.read_text(encoding="utf-8"))["notebook"]
    total = 0.0
    out = "| # | notebook | level | 2-core CPU (`cpu`) | GPU (`gpu`) | what you learn |\n|---|---|---|---|---|---|\n"
    for e in entries:
        stem = e["file"].removesuffix(".ipynb")
        exists = (ROOT / "notebooks" / e["file"]).exists()
        times = []
        for suffix in ("", ".gpu"):
            path = RESULTS_DIR / f"{stem}{suffix}.json"
            res = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            timings = res.get("timings", {})
            shown = _minutes(timings.get("notebook total (s)", timings.get("notebook (s)")))
            times.append(f"{shown} ({res['precision']})" if res.get("precision") and timings else shown)
        name = f"[{e['title']}](notebooks/{e['file']})" if exists else f"{e['title']} _(planned)_"
        out += f"| {stem[:2]} | {name} | {e['level']} | {times[0]} | {times[1]} | {e['learn']} |\n"
        total += _seconds(RESULTS_DIR / f"{stem}.json") or 0.0
    return out + (f"\n`make run` (the `cpu` profile, `pydocs`): {total / 60:.0f} minutes for the notebooks, the sum of "
                  "the measured times above, plus the one-time set-up.\n")


def results_table() -> str:
    """Markdown tables: one row per (notebook, system), one column per metric, values ×100.

    Notebooks that share a metric share a table (retrieval metrics in one, generation metrics in
    another), so no table is mostly empty columns.
    """
    def key(p):  # default-profile files of the built-in datasets: pydocs first, then faqs
        parts = p.stem.split(".")
        return parts[0], BUILT_IN_DATASETS.index(parts[1] if len(parts) > 1 else DEFAULT_DATASET)

    files = sorted((p for p in RESULTS_DIR.glob("[0-9][0-9]_*.json")  # notebooks' files (not smoke_rehearsal.json)
                    if p.stem.count(".") == 0 or (p.stem.count(".") == 1 and p.stem.split(".")[1] in BUILT_IN_DATASETS)),
                   key=key)
    tables: list[tuple[list[str], list[tuple]]] = []  # (columns, rows)
    for path in files:
        res = json.loads(path.read_text(encoding="utf-8"))
        if res.get("metrics_ci") or res.get("notebook") == SCALE_NOTEBOOK:  # their own tables: generation_table, scale_table
            continue
        systems = res.get("readme_systems") or list(res["metrics"])
        names = [m for s in systems for m, v in res["metrics"][s].items() if isinstance(v, (int, float))]
        columns, rows = next(((c, r) for c, r in tables if set(c) & set(names)), (None, None))
        if columns is None:
            columns, rows = [], []
            tables.append((columns, rows))
        columns += [m for m in dict.fromkeys(names) if m not in columns]
        for system in systems:
            rows.append((res["notebook"], res.get("dataset", DEFAULT_DATASET), system, res["metrics"][system], res.get("machine", {}).get("device", "?"),
                         res.get("date", "")))
    if not tables and not generation_table():
        return "_No results yet: run `make run`._\n"
    out = []
    for columns, rows in tables:
        text = "| notebook | data | system | " + " | ".join(columns) + " | measured on |\n"
        text += "|---|---|---|" + "---:|" * len(columns) + "---|\n"
        # Rates (every value in [0, 1]) are shown ×100; a column with any other value (a count) as it is.
        rate = {c: all(0 <= r[3][c] <= 1 for r in rows if isinstance(r[3].get(c), (int, float))) for c in columns}
        for nb, dataset, system, vals, device, date in rows:
            cells = [("" if not isinstance(vals.get(c), (int, float)) else f"{100 * vals[c]:.1f}" if rate[c] else f"{vals[c]:g}")
                     for c in columns]
            text += f"| {nb} | {dataset} | {system} | " + " | ".join(cells) + f" | {device}, {date} |\n"
        out.append(text)
    return "\n".join(out) + ("\nScores ×100 on the test split of each built-in dataset (`cpu` profile): `pydocs` (questions made "
                              "by rules) and `faqs` (real questions people asked). Confidence intervals and paired "
                              "tests are in each notebook and in `results/*.json`.\n")


def generation_table(notebooks=("03_finetune_generator_sft", "04_preference_tune_dpo")) -> str:
    """Markdown table of the generator notebooks' default results: each system's rates ×100 with
    their 95% interval (``metrics_ci``), then each recorded paired test on task success
    (``paired_tests``: Δ in points, 95% CI, p). Empty when no such results file exists."""
    rows, tests = [], []
    for nb in notebooks:
        path = RESULTS_DIR / f"{nb}.json"
        res = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if not res.get("metrics_ci"):
            continue
        for system in res.get("readme_systems") or list(res["metrics"]):
            rows.append((nb, system, res["metrics"][system], res["metrics_ci"].get(system, {})))
        for name, by_metric in res.get("paired_tests", {}).items():
            if "task success" in by_metric:
                tests.append((nb, name, by_metric["task success"]))
    if not rows:
        return ""
    columns = list(dict.fromkeys(m for _, _, vals, _ in rows for m, v in vals.items() if isinstance(v, (int, float))))

    def cell(vals, ci, m):
        if not isinstance(vals.get(m), (int, float)) or vals[m] != vals[m]:
            return ""
        low, high = (ci.get(m) or [None, None])[:2]
        return f"{100 * vals[m]:.1f}" + (f" [{100 * low:.0f}, {100 * high:.0f}]" if low is not None and high is not None else "")

    out = ("\nThe generator (`pydocs` test questions, `cpu` profile): each rate ×100 with its 95% interval "
           "(Wilson for shares of questions, bootstrap for faithfulness).\n\n"
           "| notebook | system | " + " | ".join(columns) + " |\n|---|---|" + "---:|" * len(columns) + "\n")
    for nb, system, vals, ci in rows:
        out += f"| {nb} | {system} | " + " | ".join(cell(vals, ci, m) for m in columns) + " |\n"
    if tests:
        out += ("\nPaired tests on task success (the same test questions; Δ in points with its 95% bootstrap "
                "interval, p from a paired randomization test):\n\n| notebook | comparison | Δ (pts) | 95% CI | p |\n"
                "|---|---|---:|---|---:|\n")
        for nb, name, t in tests:
            out += (f"| {nb} | {name} | {100 * t['delta']:+.1f} | [{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}] "
                    f"| {t['p_value']:.4f} |\n")
    return out


def transfer_table(notebook: str = "01_finetune_embeddings") -> str:
    """Markdown table of notebook 01's transfer section (``transfer`` in its default results file):
    each embedder on each built-in test split, nDCG@10 ×100 and the paired difference with the
    base model (points, 95% CI, p). Empty when the file has no transfer section."""
    path = RESULTS_DIR / f"{notebook}.json"
    res = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not res.get("transfer"):
        return ""
    out = ("\nDoes fine-tuning carry over? Each embedder on each test split (notebook 01, nDCG@10 ×100; "
           "Δ against the base model with its 95% CI and the paired randomization test's p):\n\n"
           "| test split | embedder | nDCG@10 | Δ (pts) | 95% CI | p |\n|---|---|---:|---:|---|---:|\n")
    for split, systems in res["transfer"].items():
        for system, row in systems.items():
            t = row["vs base"]
            delta = "" if t["delta"] == 0 and t["p_value"] == 1.0 else f"{100 * t['delta']:+.1f}"
            ci = "" if not delta else f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}]"
            p = "" if not delta else f"{t['p_value']:.4f}"
            out += f"| {split} | {system} | {100 * row['nDCG@10']:.1f} | {delta} | {ci} | {p} |\n"
    return out


SCALE_NOTEBOOK = "08_vector_database_and_scale"


def scale_table(notebook: str = SCALE_NOTEBOOK) -> str:
    """Markdown table of the vector-index benchmark (notebook 08, default profile): per corpus size
    and index, recall@10 against exact search, latency p50/p95 per query, bytes per vector in RAM
    and on disk, the ``hnsw_ef`` chosen on dev questions and the build time. Empty without results."""
    path = RESULTS_DIR / f"{notebook}.json"
    if not path.exists():
        return ""
    res = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for key, v in res["metrics"].items():
        index, passages = key.rsplit(" @ ", 1)
        rows.append((int(passages), index, v))
    rows.sort(key=lambda r: r[0])
    ef = lambda x: "" if x is None or x != x else f"{x:g}"
    text = ("| passages | index | `hnsw_ef` | recall@10 vs exact | p50 (ms) | p95 (ms) | RAM bytes / vector | "
            "disk bytes / vector | build (s) |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for passages, index, v in rows:
        text += (f"| {passages:,} | {index} | {ef(v.get('hnsw_ef'))} | {v['recall@10']:.4f} | {v['p50_ms']:.2f} | "
                 f"{v['p95_ms']:.2f} | {v['ram_bytes_per_vector']:,.0f} | {v['disk_bytes_per_vector']:,.0f} | {v['build_s']:g} |\n")
    machine = res.get("machine", {})
    return (f"\nVector index ({notebook}, `cpu` profile, {res.get('dataset', DEFAULT_DATASET)} questions, {res.get('model', '')}): "
            f"Qdrant Edge in process, one query at a time, on {machine.get('device', '?')} with {machine.get('cpus', '?')} "
            f"cores, {res.get('date', '')}. `hnsw_ef` is chosen on dev questions, recall and latency are on test questions.\n\n"
            + text)


def _replace(text: str, start: str, end: str, block: str) -> str:
    if start not in text or end not in text:
        raise ValueError(f"README lacks the markers {start} … {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}{end}{tail}"


HL_START, HL_END = "<!-- headlines:start -->", "<!-- headlines:end -->"


def _pts(t: dict) -> str:
    """A paired test (``metrics.paired_test``) as "+3.7 [+1.0, +6.7], p 0.0176" (points)."""
    p = t.get("p (Holm)", t["p_value"])
    p_text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    return (f"{100 * t['delta']:+.1f} [{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}], "
            f"{'Holm ' if 'p (Holm)' in t else ''}p {p_text}")


def headline_rows() -> list[tuple[str, str, str, str, str]]:
    """One row per lesson whose results file names its best system without training
    (``best_no_training``, chosen on dev): (notebook, data, fine-tuned system, best without training,
    the paired difference on test)."""
    rows = []
    for nb in ("02_finetune_reranker", "03_finetune_generator_sft", "04_preference_tune_dpo", "05_rewrite_queries",
               "06_evaluate_the_stack"):
        for tag in ("", ".faqs"):
            path = RESULTS_DIR / f"{nb}{tag}.json"
            res = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            best, data = res.get("best_no_training"), (tag.lstrip(".") or DEFAULT_DATASET)
            if not best:
                continue
            if nb == "02_finetune_reranker":
                system = res["headline"]["fine-tuned"]
                rows.append((nb, data, f"{system}: nDCG@10", best, _pts(res["paired_tests"][f"{system} vs {best}"]["nDCG@10"])))
            elif nb == "03_finetune_generator_sft":
                t = res["paired_tests"][f"SFT vs {best}"]["task success"]
                rows.append((nb, data, "SFT: task success", best, _pts(t)))
            elif nb == "04_preference_tune_dpo":
                t = res["paired_tests"][f"SFT + DPO vs {best}"]["task success"]
                rows.append((nb, data, "SFT + DPO: task success", best, _pts(t)))
            elif nb == "05_rewrite_queries":
                for qs, b in best.items():
                    t = res["head_to_head"][f"{qs} · SFT + DPO vs {b}"]
                    rows.append((nb, data, f"SFT + DPO rewriter, {qs} queries: BM25 nDCG@10", b, _pts(t)))
            else:
                cells = res["end_to_end_2x2"]["tests"]
                for name, t in cells.items():
                    delta = {"delta": t["Δ (pts)"] / 100, "p_value": t["p"], "p (Holm)": t["p (Holm)"]}
                    low, high = (float(x) / 100 for x in t["95% CI (pts)"].strip("[]").split(","))
                    base_cell = t["from"] == "base retrieval · " + best.rsplit(" · ", 1)[-1]
                    rows.append((nb, data, f"end-to-end success: {name} ({t['to']})", best if base_cell else t["from"],
                                 _pts({**delta, "ci_low": low, "ci_high": high})))
    return rows


def headlines_table() -> str:
    rows = headline_rows()
    if not rows:
        return "No lesson has recorded its best system without training yet.\n"
    out = ("| notebook | data | fine-tuned | against the best system without training (chosen on dev) | "
           "Δ points [95% CI], paired test |\n|---|---|---|---|---|\n")
    return out + "".join(f"| {nb[:2]} | {d} | {sys_} | {best} | {pts} |\n" for nb, d, sys_, best, pts in rows)


def update_readme(path=ROOT / "README.md") -> bool:
    """Regenerate the notebook table and the results table between their markers in the README."""
    text = path.read_text(encoding="utf-8")
    text = _replace(text, NB_START, NB_END, notebooks_table())
    if HL_START in text:
        text = _replace(text, HL_START, HL_END, headlines_table())
    if WORKSHOP_START in text:
        text = _replace(text, WORKSHOP_START, WORKSHOP_END, workshop_table())
    text = _replace(text, START, END, results_table() + transfer_table() + generation_table() + scale_table())
    atomic_write_text(path, text)
    return True


SMOKE_RECORD = RESULTS_DIR / "smoke_rehearsal.json"


def record_smoke(path=SMOKE_RECORD) -> dict:
    """Write ``results/smoke_rehearsal.json``: each notebook's time in the last smoke run
    (``results/<notebook>.smoke.json``) and their sum, the number the README states for
    ``make run PROFILE=smoke``. Run it by hand after a rehearsal on a fresh clone; the rehearsal
    itself writes nothing that git tracks."""
    import time

    from .config import machine_info

    seconds = {}
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        smoke = RESULTS_DIR / f"{nb.stem}.smoke.json"
        if not smoke.exists():
            raise FileNotFoundError(f"results/{smoke.name}: no smoke run of {nb.name}; run `make run PROFILE=smoke` first")
        timings = json.loads(smoke.read_text(encoding="utf-8")).get("timings", {})
        seconds[nb.stem] = timings.get("notebook total (s)", timings.get("notebook (s)"))
    record = {"what": "make run PROFILE=smoke: the notebooks' own run times", "date": time.strftime("%Y-%m-%d"),
              "machine": machine_info(), "notebooks (s)": seconds,
              "notebook total (s)": round(sum(seconds.values()), 1)}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


WORKSHOP_RECORD = RESULTS_DIR / "workshop_rehearsal.json"
WORKSHOP_START, WORKSHOP_END = "<!-- workshop:start -->", "<!-- workshop:end -->"
WORKSHOP_REQUIRED = ("01", "02", "03", "05", "06")  # issue #30: these must show their main effect with a CI above 0


def _ci_pts(text: str) -> list[float]:
    """"[-4.2, +10.8]" (points) -> [-4.2, 10.8]."""
    return [float(x) for x in text.strip("[]").split(",")]


def workshop_effect(nb: str, res: dict) -> dict | None:
    """The stage's main effect in a results file, as the workshop rehearsal reports it:
    ``{"effect", "delta", "ci", "unit"}`` (points ×100, or AUC), None for 00 and 08 (no effect)."""
    def pts(name, t, metric):
        return {"effect": name, "delta": round(100 * t[metric]["delta"], 1),
                "ci": [round(100 * t[metric]["ci_low"], 1), round(100 * t[metric]["ci_high"], 1)], "unit": "points"}

    if nb == "01_finetune_embeddings":
        name = next(k for k in res["paired_tests"] if k.startswith("fine-tuned ") and " vs base " in k)
        return pts(f"{name}, test nDCG@10", res["paired_tests"][name], "nDCG@10")
    if nb == "02_finetune_reranker":
        system = res["headline"]["fine-tuned"]
        name = f"{system} vs {system.split(' → ')[0]}"
        return pts(f"{name}, test nDCG@10", res["paired_tests"][name], "nDCG@10")
    if nb == "03_finetune_generator_sft":
        d = res["decision_auc_sft_minus_prompt"]
        return {"effect": "SFT decision AUC minus the prompt baseline's, test (paired bootstrap)",
                "delta": round(d["delta"], 3), "ci": [round(d["ci_low"], 3), round(d["ci_high"], 3)], "unit": "AUC"}
    if nb == "04_preference_tune_dpo":
        return pts("SFT + DPO vs SFT, test task success", res["paired_tests"]["SFT + DPO vs SFT"], "task success")
    if nb == "05_rewrite_queries":
        t = res["bm25_vs_raw"]["novice · SFT + DPO"]
        return {"effect": "SFT + DPO rewrite vs the raw query, novice test queries, BM25 nDCG@10", "delta": t["Δ (pts)"],
                "ci": _ci_pts(t["95% CI"]), "unit": "points"}
    if nb == "06_evaluate_the_stack":
        t = res["end_to_end_2x2"]["tests"]["fine-tuned retrieval, generator without training"]
        return {"effect": f"end to end: {t['to']} vs {t['from']}, test success", "delta": t["Δ (pts)"],
                "ci": _ci_pts(t["95% CI (pts)"]), "unit": "points"}
    if nb == "07_drift_and_retraining":
        t = next(r for r in res["paired_vs_never"] if r[next(iter(r))] == "monthly")
        return {"effect": "monthly retraining vs never, test nDCG@10", "delta": t["Δ (pts)"], "ci": _ci_pts(t["95% CI (pts)"]),
                "unit": "points"}
    return None


def record_workshop(path=WORKSHOP_RECORD, wall=ROOT / "runs" / "workshop" / "wall_seconds.tsv", fp32_results=None) -> dict:
    """Write ``results/workshop_rehearsal.json`` after ``make run PROFILE=workshop`` on a fresh clone:
    each notebook's own run time (``results/<notebook>.workshop.json``), its wall time under
    papermill with the kernel's start (``runs/workshop/wall_seconds.tsv``, written by ``make run``),
    its precision and its main effect (:func:`workshop_effect`), and whether the required effects
    (``WORKSHOP_REQUIRED``) have their 95% CI above 0. ``fp32_results``: a folder with the
    ``<notebook>.workshop.json`` files of the same notebooks re-run with ``SEARCHTUNE_PRECISION=fp32``
    on the same machine; their times go in beside (the same-machine speed-up of ``auto``)."""
    import time

    from .config import machine_info

    walls, runs = {}, {}
    if wall.exists():
        for line in wall.read_text(encoding="utf-8").splitlines():
            name, sec = line.split("\t")
            walls[name] = float(sec)  # the last run of a notebook counts
            runs[name] = runs.get(name, 0) + 1
    rows = {}
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        f = RESULTS_DIR / f"{nb.stem}.workshop.json"
        if not f.exists():
            raise FileNotFoundError(f"results/{f.name}: no workshop run of {nb.name}; run `make run PROFILE=workshop` first")
        res = json.loads(f.read_text(encoding="utf-8"))
        timings = res.get("timings", {})
        effect = workshop_effect(nb.stem, res)
        if effect is not None:
            effect["required"] = nb.stem[:2] in WORKSHOP_REQUIRED
            effect["ci above 0"] = effect["ci"][0] > 0
        rows[nb.stem] = {"notebook (s)": timings.get("notebook total (s)", timings.get("notebook (s)")),
                         "wall with kernel start (s)": walls.get(nb.stem), "precision": res.get("precision", "fp32"),
                         "peak memory (GB)": res.get("peak_memory_gb"), "main effect": effect}
        fp32 = Path(fp32_results) / f.name if fp32_results else None
        if fp32 is not None and fp32.exists():
            other = json.loads(fp32.read_text(encoding="utf-8"))
            sec = other.get("timings", {}).get("notebook total (s)")
            if other.get("precision") == "fp32" and sec:
                rows[nb.stem]["fp32 run, same machine (s)"] = sec
                rows[nb.stem]["fp32 / this run"] = round(sec / rows[nb.stem]["notebook (s)"], 2)
    total = round(sum(r["notebook (s)"] for r in rows.values()), 1)
    wall_total = round(sum(r["wall with kernel start (s)"] for r in rows.values()), 1) if all(
        r["wall with kernel start (s)"] is not None for r in rows.values()) else None
    record = {"what": "make run PROFILE=workshop on a fresh clone: each notebook's time and main effect (95% CI)",
              "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "notebooks": rows,
              "notebook total (s)": total, "wall total with kernel starts (s)": wall_total,
              "run again in the same clone (the last run counts)": sorted(n for n, k in runs.items() if k > 1),
              "every notebook within 10 minutes": all((r["wall with kernel start (s)"] or r["notebook (s)"]) <= 600
                                                      for r in rows.values()),
              "required effects with the CI above 0": {nb[:2]: r["main effect"]["ci above 0"] for nb, r in rows.items()
                                                       if r["main effect"] and r["main effect"]["required"]}}
    atomic_write_text(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return record


def workshop_table(path=WORKSHOP_RECORD) -> str:
    """The README's workshop table, from ``results/workshop_rehearsal.json``."""
    if not path.exists():
        return "No workshop rehearsal recorded yet.\n"
    rec = json.loads(path.read_text(encoding="utf-8"))
    out = ("| notebook | minutes (with the kernel's start) | fp32 on the same machine: the notebook's own time (× bf16's) "
           "| main effect | Δ [95% CI] | CI above 0 |\n"
           "|---|---|---|---|---|---|\n")
    for nb, r in rec["notebooks"].items():
        sec = r["wall with kernel start (s)"] or r["notebook (s)"]
        e = r["main effect"]
        if e is None:
            eff, val, above = "—", "—", "—"
        else:
            fmt = "{:+.3f}" if e["unit"] == "AUC" else "{:+.1f}"
            val = f"{fmt.format(e['delta'])} [{fmt.format(e['ci'][0])}, {fmt.format(e['ci'][1])}]" + (" AUC" if e["unit"] == "AUC" else " pts")
            eff = e["effect"]
            above = ("yes" if e["ci above 0"] else "no") + ("" if e["required"] else " (not required)")
        fp32 = r.get("fp32 run, same machine (s)")
        fp32_text = f"{fp32 / 60:.1f} min ({r['fp32 / this run']:.2f}×)" if fp32 else "—"
        out += f"| {nb[:2]} | {sec / 60:.1f} | {fp32_text} | {eff} | {val} | {above} |\n"
    tot = rec["wall total with kernel starts (s)"] or rec["notebook total (s)"]
    out += f"| all | {tot / 60:.1f} | | | | |\n"
    m = rec["machine"]
    out += (f"\nRecorded {rec['date']} on a fresh clone: {m.get('cpus')} CPU cores ({m.get('cpu', '?')}; "
            f"{m.get('native bf16', '')}), `results/workshop_rehearsal.json`"
            + (f"; run again in the same clone after a change (the last run counts): "
               f"{', '.join(n[:2] for n in rec.get('run again in the same clone (the last run counts)', []))}"
               if rec.get("run again in the same clone (the last run counts)") else "") + ".\n")
    return out


PRECISION_RECORD = RESULTS_DIR / "precision.json"


def _dev_metric(nb: str, res: dict):
    """The stage's main dev metric in a results file, as ``(name, value, [low, high] or None)``."""
    if nb == "01_finetune_embeddings":
        return "dev nDCG@10 (fine-tuned embedder)", res["dev"]["after"]["nDCG@10"], None
    if nb == "02_finetune_reranker":
        return "dev nDCG@10, BM25's top candidates re-ranked (depth chosen on dev)", res["dev_choice"]["BM25"]["reranker alone"], None
    if nb == "03_finetune_generator_sft":
        auc, low, high = res["decision_auc"]["SFT"]["dev"]
        return "dev decision ROC AUC (SFT)", auc, [low, high]
    if nb == "04_preference_tune_dpo":
        auc, low, high = res["decision_auc"]["SFT + DPO (dev)"]
        return "dev decision ROC AUC (SFT + DPO)", auc, [low, high]
    if nb == "05_rewrite_queries":
        chosen = res["dev_choices"]["novice"]["SFT + DPO"]
        return "dev BM25 nDCG@10, novice queries, SFT + DPO rewrites (r chosen on dev)", chosen["dev nDCG@10 by r"][str(chosen["r"])], None
    return None


def record_precision(fp32_ref: str, notebooks=None, path=PRECISION_RECORD) -> dict:
    """Write ``results/precision.json``: for each notebook whose committed results are a bf16 run,
    the same notebook's fp32 run (``results/<notebook>.json`` at git commit ``fp32_ref``) beside it —
    wall time, training time, the stage's main dev metric and its 95% interval where the run stored
    one — and whether bf16 stayed inside the fp32 run's interval. The notebooks' headers state both
    times; a test checks them against this record."""
    import subprocess
    import time

    bench = RESULTS_DIR / "precision_bench.json"
    record = {"what": "fp32 against bf16 autocast, one seed per stage: each notebook's committed bf16 run beside its "
                      "last fp32 run, and the same steps timed in both precisions on one machine (precision_bench.json)",
              "fp32 runs": f"results/*.json at commit {fp32_ref}", "date": time.strftime("%Y-%m-%d"),
              "caution": "the fp32 and bf16 notebook runs may come from different machines (see each run's machine): "
                         "compare precisions with the same-machine steps below, not with the notebook totals",
              "same-machine steps": json.loads(bench.read_text(encoding="utf-8")) if bench.exists() else None,
              "notebooks": {}}
    for nb in notebooks or [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]:
        now = json.loads((RESULTS_DIR / f"{nb}.json").read_text(encoding="utf-8"))
        if now.get("precision") != "bf16":
            continue
        old = json.loads(subprocess.run(["git", "show", f"{fp32_ref}:results/{nb}.json"], cwd=ROOT, check=True,
                                        capture_output=True, text=True).stdout)
        entry = {}
        for name, res in (("fp32", old), ("bf16", now)):
            timings = res.get("timings", {})
            train = {k: v for k, v in timings.items() if "training" in k or k.startswith("train ")}
            if not train and "retrain_seconds" in res:  # notebook 07: one retrain per training month
                train = {"retrains, all models (s)": round(sum(res["retrain_seconds"].values()), 1)}
            metric = _dev_metric(nb, res)
            entry[name] = {"notebook total (s)": timings.get("notebook total (s)", timings.get("notebook (s)")), "training (s)": train,
                           "machine": res.get("machine", {}).get("cpu", "not recorded"), "date": res.get("date"),
                           **({"dev metric": metric[0], "value": round(metric[1], 4), "95% CI": metric[2]} if metric else {})}
        entry["notebook time, fp32 run / bf16 run (the machines may differ)"] = round(
            entry["fp32"]["notebook total (s)"] / entry["bf16"]["notebook total (s)"], 2)
        ci = entry["fp32"].get("95% CI")
        if ci:
            entry["bf16 inside the fp32 run's 95% CI"] = ci[0] <= entry["bf16"]["value"] <= ci[1]
        record["notebooks"][nb] = entry
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    import sys

    if "--record-precision" in sys.argv[1:]:
        ref = sys.argv[sys.argv.index("--record-precision") + 1]
        r = record_precision(ref)
        print(f"results/{PRECISION_RECORD.name}: {', '.join(r['notebooks'])} against the fp32 runs at {ref}")
    elif "--record-workshop" in sys.argv[1:]:
        args = sys.argv[1:]
        r = record_workshop(fp32_results=args[args.index("--fp32") + 1] if "--fp32" in args else None)
        print(f"results/{WORKSHOP_RECORD.name}: {r['notebook total (s)']} s over {len(r['notebooks'])} notebooks; "
              f"required effects with the CI above 0: {r['required effects with the CI above 0']}")
    elif "--record-smoke" in sys.argv[1:]:
        r = record_smoke()
        print(f"results/{SMOKE_RECORD.name}: {r['notebook total (s)']} s over {len(r['notebooks (s)'])} notebooks")
    else:
        update_readme()
        print("README notebook and results tables regenerated from notebooks/index.toml and results/*.json")
