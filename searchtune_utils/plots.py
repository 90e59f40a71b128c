"""Matplotlib figures shared by the notebooks. Each function returns the Figure (it does not
call ``plt.show()``); :func:`save_figure` writes it to ``results/figures/<name>.png``.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .config import DEFAULT_PROFILE, RESULTS_DIR

FIGURES_DIR = RESULTS_DIR / "figures"


def metric_bars(df_or_dict, title: str, ylabel: str = "score (0-1)"):
    """Grouped bar chart: one group per metric, one bar per system, value on each bar.

    In: ``{system: {metric: score}}`` or a DataFrame with systems as rows and metrics as columns
    (columns whose name starts with "Δ", as added by ``metrics.compare``, are ignored).
    Out: the matplotlib Figure.
    """
    df = pd.DataFrame.from_dict(df_or_dict, orient="index") if isinstance(df_or_dict, dict) else df_or_dict
    df = df[[c for c in df.columns if not str(c).startswith("Δ")]].astype(float)
    systems, metrics = list(df.index), list(df.columns)
    width = 0.8 / max(len(systems), 1)
    x = np.arange(len(metrics))
    rows = -(-len(systems) // 3)  # legend rows below the plot, three systems per row
    fig, ax = plt.subplots(figsize=(min(11, max(6, 0.75 * len(metrics) * max(len(systems), 2))), 4 + 0.25 * rows))
    for i, system in enumerate(systems):
        bars = ax.bar(x + (i - (len(systems) - 1) / 2) * width, df.loc[system].values, width, label=str(system))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, [textwrap.fill(str(m), 16) for m in metrics])  # long metric names on several lines
    ax.set_xlabel("metric")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(1.0, float(np.nanmax(df.values)) * 1.12) if df.size else 1.0)
    ax.set_title(title)
    # below the axes, so it never hides a bar
    ax.legend(title="system", fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(3, len(systems)))
    fig.tight_layout()
    return fig


def length_histogram(lengths: dict[str, list[int]], title: str, xlabel: str):
    """Overlaid histograms of lengths, one per series, with each series' median as a dashed line.

    In: ``{label: [length, ...]}``, a title and the x label (give the unit, e.g. "tokens per
    passage"). Out: the Figure (y axis = count).
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    values = [v for vs in lengths.values() for v in vs]
    bins = np.histogram_bin_edges(values, bins=40) if values else 10
    for i, (label, vs) in enumerate(lengths.items()):
        color = f"C{i}"
        ax.hist(vs, bins=bins, alpha=0.5, color=color, label=f"{label} (n={len(vs)})")
        if vs:
            ax.axvline(float(np.median(vs)), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title + "\n(dashed line: median)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rank_shift(before: dict, after: dict, title: str, k: int | None = None,
               names: tuple[str, str] = ("before", "after")):
    """Rank of each query's first relevant document before vs after (e.g. fine-tuning, re-ranking).

    In: two ``{qid: rank or None}`` dicts (``metrics.rank_of_first_relevant``), a title, and
    ``k`` = the depth searched (default: largest rank seen). ``None`` (not found in the top k)
    is drawn in a separate band labelled "not found (>k)" at 1.5 × k (on a log axis k + 1 would
    sit on top of rank k). Points below the diagonal improved.
    ``names`` labels the two axes (e.g. ``("BM25", "dense")``); "improved" means the second is better.
    Out: the Figure (log-log scatter; only queries present in both dicts).
    """
    qids = [q for q in before if q in after]
    ranks = [r for q in qids for r in (before[q], after[q]) if r is not None]
    k = k or (max(ranks) if ranks else 10)
    miss = 1.5 * k

    def pos(r):
        return miss if r is None else r

    xs = np.array([pos(before[q]) for q in qids], dtype=float)
    ys = np.array([pos(after[q]) for q in qids], dtype=float)
    better, worse = int((ys < xs).sum()), int((ys > xs).sum())
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    jitter = np.random.default_rng(0).uniform(0.93, 1.07, size=(2, len(qids)))  # separates stacked points
    colors = np.where(ys < xs, "C2", np.where(ys > xs, "C3", "C7"))
    ax.scatter(xs * jitter[0], ys * jitter[1], s=14, alpha=0.6, c=colors)
    ax.plot([1, miss], [1, miss], color="grey", linewidth=1, linestyle="--")
    ax.axvline(1.2 * k, color="lightgrey", linewidth=0.8)  # separates the "not found" band
    ax.axhline(1.2 * k, color="lightgrey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({t for t in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= k} | {miss})
    labels = [f"not found\n(>{k})" if t == miss else str(t) for t in ticks]
    ax.set_xticks(ticks, labels, rotation=45)
    ax.set_yticks(ticks, [lab.replace("\n", " ") for lab in labels])
    ax.minorticks_off()
    ax.set_xlim(0.8, miss * 1.3)
    ax.set_ylim(0.8, miss * 1.3)
    ax.set_xlabel(f"rank of first relevant, {names[0]} (1 = top; log scale)")
    ax.set_ylabel(f"rank of first relevant, {names[1]} (1 = top; log scale)")
    verdict = ("improved", "worse") if names == ("before", "after") else (f"better with {names[1]}", f"better with {names[0]}")
    ax.set_title(f"{title}\n{better} queries {verdict[0]} (green), {worse} {verdict[1]} (red), "
                 f"{len(qids) - better - worse} same")
    fig.tight_layout()
    return fig


def loss_curve(log_history: list[dict], title: str):
    """Training loss and evaluation metrics against the optimiser step.

    In: a Hugging Face ``trainer.state.log_history`` (list of dicts with "step" and "loss" or
    "eval_*" keys). Out: the Figure — left axis: "loss" and "eval_loss"; right axis (if any):
    other numeric ``eval_*`` metrics (runtime/throughput keys are skipped).
    """
    skip = ("runtime", "per_second", "epoch")
    series: dict[str, tuple[list, list]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, val in entry.items():
            if (key == "loss" or key.startswith("eval_")) and not any(s in key for s in skip) \
                    and isinstance(val, (int, float)) and not math.isnan(val):
                series.setdefault(key, ([], []))
                series[key][0].append(step)
                series[key][1].append(val)
    fig, ax = plt.subplots(figsize=(7, 4))
    losses = [k for k in series if k in ("loss", "eval_loss")]
    others = [k for k in series if k not in losses]
    for i, key in enumerate(losses):
        ax.plot(*series[key], marker="o" if key.startswith("eval") else None, markersize=3,
                color=f"C{i}", label=key)
    ax.set_xlabel("training step (optimiser updates)")
    ax.set_ylabel("loss (training objective)")
    handles, labels = ax.get_legend_handles_labels()
    if others:
        ax2 = ax.twinx()
        for j, key in enumerate(others, start=len(losses)):
            ax2.plot(*series[key], marker="s", markersize=3, linestyle=":", color=f"C{j}", label=key)
        ax2.set_ylabel("eval metric (score)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig, name: str, profile: str = DEFAULT_PROFILE, dataset: str = "pydocs") -> Path:
    """Write ``fig`` to ``results/figures/<name>.png`` at 110 dpi (``results/figures/<profile>/``
    outside the default profile, so a smoke run never overwrites the committed figures; a dataset
    other than pydocs adds its tag: ``<name>.faqs.png``).
    Out: the path written."""
    from .config import dataset_tag

    folder = FIGURES_DIR if profile == DEFAULT_PROFILE else FIGURES_DIR / profile
    folder.mkdir(parents=True, exist_ok=True)
    tag = dataset_tag(dataset)
    path = folder / (f"{Path(name).stem}.png" if tag == "pydocs" else f"{Path(name).stem}.{tag}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def similarity_grid(sim, n_questions: int, title: str):
    """Heat map of one training batch: questions (rows) against the batch's passages (columns),
    positives first, then the mined hard negatives. The right answer of each question is framed
    in red, its own hard negative in dashed orange. In: a ``(n_questions, n_passages)`` tensor or
    array of similarities, the number of questions, a title. Out: the Figure."""
    import numpy as np

    sim = np.asarray(sim, dtype=float)
    n_pass = sim.shape[1]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n_pass, 0.8 + 0.5 * sim.shape[0]))
    im = ax.imshow(sim, cmap="viridis", vmin=0, vmax=1)
    for i in range(sim.shape[0]):
        for j in range(n_pass):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if sim[i, j] > 0.6 else "white", fontweight="bold" if i == j else None)
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        if n_pass > n_questions:
            ax.add_patch(plt.Rectangle((n_questions + i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="orange",
                                       linewidth=2, linestyle="--"))
    ax.set_xticks(range(n_pass), [f"p{j + 1}" for j in range(n_questions)] +
                  [f"n{j + 1}" for j in range(n_pass - n_questions)])
    ax.set_yticks(range(sim.shape[0]), [f"q{i + 1}" for i in range(sim.shape[0])])
    ax.set_xlabel("passages in the batch: positives p, mined hard negatives n")
    ax.set_ylabel("questions")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity")
    fig.tight_layout()
    return fig
