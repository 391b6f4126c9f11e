"""The paper's figures (3H trade-off, seed robustness, density sensitivity) and a Pareto view,
each written as PNG and PDF (the merge diagnostics figure is `diagnostics_figure`).

Every figure is drawn from the same rounded averages as the tables. A figure without data is
still written, saying "no data yet", so a partial run never fails at the report stage.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from mixmerge.report.labels import (
    CONTINUAL_STAGES,
    GROUP_LABELS,
    MIXTURE_LABELS,
    method_label,
    method_order,
)
from mixmerge.report.plotting import no_data, pyplot, save
from mixmerge.report.scores import AVG, Selections, Summary, load_scores, resolve, summarize_all
from mixmerge.report.stats import DEFAULT_ALPHA, DEFAULT_BOOTSTRAP, Bootstrap, load_bootstrap
from mixmerge.report.tables import default_selection_dir

log = logging.getLogger(__name__)

FIGURES = ("tradeoff", "seeds", "density", "pareto")
DIMENSIONS = ("Helpful Avg", "Honest Avg", "Harmless Avg")
DIM_COLORS = {"Helpful Avg": "#1f77b4", "Honest Avg": "#2ca02c", "Harmless Avg": "#d62728"}
PARTIAL_NOTE = "{} = partial average (some benchmarks missing)"
# Robustness sweeps of the static setting: merge/sweep/<method>/<variant> (the workflow's
# layout) or merge/static/<method>/<variant>; variant = seed<N> | density<D>.
_SWEEP_RE = re.compile(r"merge/(static|sweep|continual)/([^/]+)/(seed|density)([0-9.eE+-]+)")


def _f(summary: Summary | None, column: str) -> float | None:
    value = None if summary is None else summary.get(column)
    return None if value is None else float(value)


def model_label(model_id: str) -> str:
    """A short human label of a model id, for legends and annotations."""
    parts = model_id.split("/")
    if model_id == "base":
        return "Base"
    if parts[0] == "dpo" and len(parts) > 1:
        return " ".join([GROUP_LABELS.get(parts[1], parts[1]), *parts[2:]])
    if parts[0] == "mix" and len(parts) > 1:
        return " ".join([MIXTURE_LABELS.get(parts[1], parts[1]), *parts[2:]])
    if parts[0] == "continual" and len(parts) > 1:
        return CONTINUAL_STAGES.get(parts[1], parts[1]).split(" (")[0]
    if parts[0] == "merge" and len(parts) > 2:
        label = method_label(parts[2]) + (" (cont.)" if parts[1] == "continual" else "")
        return " ".join([label, *parts[3:]])
    return model_id


def model_kind(model_id: str) -> str:
    if _SWEEP_RE.fullmatch(model_id):
        return "merge sweep"
    parts = model_id.split("/")
    if parts[0] == "merge" and len(parts) > 1:
        return f"merge ({parts[1]})"
    return {"base": "base", "dpo": "group DPO", "mix": "data mixture"}.get(parts[0], parts[0])


KIND_STYLE: dict[str, tuple[str, str]] = {  # kind -> (color, marker)
    "base": ("black", "*"),
    "group DPO": ("#ff7f0e", "s"),
    "data mixture": ("#9467bd", "D"),
    "continual": ("#8c564b", "v"),
    "merge (static)": ("#1f77b4", "o"),
    "merge (continual)": ("#17becf", "^"),
    "merge sweep": ("#bbbbbb", "."),
}


# --- Fig. 1: 3H trade-off of the group models -------------------------------------------------


def tradeoff_figure(
    summaries: Mapping[str, Summary],
    selections: Selections,
    stem: Path,
    stats: Bootstrap | None = None,
) -> list[Path]:
    title = "3H trade-off: change of each group average vs. the base model"
    base = summaries.get("base")
    rows = []
    bars: dict[tuple[int, str], tuple[float, float]] = {}  # (row, dim) -> the interval's ends
    groups = list(GROUP_LABELS) + sorted(
        {m.split("/")[1] for m in summaries if m.startswith("dpo/")} - set(GROUP_LABELS)
    )
    for group in groups:
        model_id, _ = resolve(f"dpo/{group}", selections, summaries)
        summary = summaries.get(model_id) if model_id else None
        deltas = {}
        for dim in DIMENSIONS:
            value, ref = _f(summary, dim), _f(base, dim)
            if value is not None and ref is not None:
                partial = summary.is_partial(dim) or base.is_partial(dim)  # type: ignore[union-attr]
                deltas[dim] = (value - ref, partial)
                found = stats.compare(dim, model_id, "base", value - ref) if stats else None
                if found is not None:
                    bars[(len(rows), dim)] = (found.interval.low, found.interval.high)
        if deltas:
            rows.append((GROUP_LABELS.get(group, group), deltas))
    if not rows:
        return no_data(stem, title, "no data yet (needs base and group-model scores)")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.5, 1.5 * len(rows) + 2), 4.2))
    width = 0.8 / len(DIMENSIONS)
    any_partial = False
    for j, dim in enumerate(DIMENSIONS):
        for i, (_, deltas) in enumerate(rows):
            if dim not in deltas:
                continue
            delta, partial = deltas[dim]
            any_partial |= partial
            x = i + (j - 1) * width
            ax.bar(
                x,
                delta,
                width,
                color=DIM_COLORS[dim],
                hatch="//" if partial else None,
                edgecolor="white" if not partial else "black",
                label=dim.replace(" Avg", "") if i == 0 or dim not in rows[0][1] else None,
            )
            if (i, dim) in bars:  # the paired bootstrap interval of the difference
                low, high = bars[(i, dim)]
                yerr = [[max(delta - low, 0.0)], [max(high - delta, 0.0)]]
                ax.errorbar(x, delta, yerr=yerr, fmt="none", color="black", capsize=2, lw=0.8)
            ax.annotate(
                f"{delta:+.2f}",
                (x, delta),
                xytext=(0, 2 if delta >= 0 else -9),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=15)
    ax.set_xlabel("model trained on one annotation group's data (selected DPO candidate)")
    ax.set_ylabel("Δ group average vs. base (points)")
    if bars:
        title += f"\nerror bars: {100 * (1 - stats.alpha):g}% paired bootstrap interval"  # type: ignore[union-attr]
    ax.set_title(
        title + ("\n" + PARTIAL_NOTE.format("hatched") if any_partial else ""), fontsize=10
    )
    ax.legend(title="dimension", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, stem)


# --- Fig. 3 / Fig. 4: seed robustness and density sensitivity ---------------------------------


def sweep_points(summaries: Mapping[str, Summary], kind: str) -> dict[str, list[tuple[float, float]]]:
    """method -> [(seed or density, AVG)] of the static sweeps."""
    found: dict[str, list[tuple[float, float]]] = {}
    for model_id, summary in summaries.items():
        m = _SWEEP_RE.fullmatch(model_id)
        value = _f(summary, AVG)
        if m and m.group(1) != "continual" and m.group(3) == kind and value is not None:
            found.setdefault(m.group(2), []).append((float(m.group(4)), value))
    return {k: sorted(v) for k, v in sorted(found.items(), key=lambda kv: method_order(kv[0]))}


def _partial_sweep(summaries: Mapping[str, Summary], kind: str) -> bool:
    return any(
        s.is_partial(AVG)
        for m, s in summaries.items()
        if (mm := _SWEEP_RE.fullmatch(m)) and mm.group(1) != "continual" and mm.group(3) == kind
    )


def seeds_figure(summaries: Mapping[str, Summary], stem: Path) -> list[Path]:
    title = "Seed robustness (static setting): AVG over random seeds"
    series = sweep_points(summaries, "seed")
    rtsvm = _f(summaries.get("merge/static/r_tsvm"), AVG)
    if "r_tsvm" not in series and rtsvm is not None and series:
        series["r_tsvm"] = [(0.0, rtsvm)]  # deterministic: one point, no spread
    if not series:
        return no_data(
            stem, title, "no data yet (no seed-sweep scores, merge/sweep/<method>/seed<N>)"
        )
    base = _f(summaries.get("base"), AVG)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(series) + 2), 4.2))
    if base is not None:
        ax.axhline(base, color="grey", linestyle=":", linewidth=1, label="base")
    for i, (method, points) in enumerate(series.items()):
        values = [v for _, v in points]
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        color = "#d62728" if method.startswith("r_tsvm") else "#1f77b4"
        offsets = [(k - (len(values) - 1) / 2) * 0.06 for k in range(len(values))]
        ax.scatter([i + o for o in offsets], values, color=color, alpha=0.5, s=18, zorder=2)
        ax.errorbar(i, mean, yerr=spread, fmt="o", color="black", capsize=6, zorder=3, ms=5)
        above = f", >base {sum(v > base for v in values)}/{len(values)}" if base is not None else ""
        ax.annotate(
            f"{mean:.2f}±{spread:.2f}\n(n={len(values)}{above})",
            (i, max(values)),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.set_xticks(range(len(series)), [method_label(m) for m in series], rotation=15)
    ax.set_xlabel("merging method")
    ax.set_ylabel("AVG (mean of the three group averages)")
    note = "dots: seeds; black: mean ± std" + ("; dotted: the base model" if base is not None else "")
    if _partial_sweep(summaries, "seed"):
        note += "; averages partial (some benchmarks missing)"
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, stem)


def density_figure(summaries: Mapping[str, Summary], stem: Path) -> list[Path]:
    title = "Density sensitivity (static setting): AVG against density"
    series = sweep_points(summaries, "density")
    if not series:
        return no_data(
            stem, title, "no data yet (no density-sweep scores, merge/sweep/<method>/density<D>)"
        )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, points in series.items():
        ax.plot(*zip(*points, strict=True), marker="o", label=method_label(method))
    rtsvm = _f(summaries.get("merge/static/r_tsvm"), AVG)
    if rtsvm is not None and "r_tsvm" not in series:
        ax.axhline(rtsvm, color="#d62728", linestyle="--", label="R-TSVM (no density)")
    ax.set_xlabel("density (fraction of each task vector kept)")
    ax.set_ylabel("AVG (mean of the three group averages)")
    if _partial_sweep(summaries, "density"):
        title += "\naverages partial (some benchmarks missing)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="method")
    ax.grid(alpha=0.3)
    return save(fig, stem)


# --- Pareto view ------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (both axes maximised), sorted by x."""
    front = [
        i
        for i, (x, y) in enumerate(points)
        if not any(
            (x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points)
        )
    ]
    return sorted(front, key=lambda i: points[i])


def _errors(stats: Bootstrap | None, column: str, model: str, value: float) -> list[list[float]] | None:
    interval = stats.interval(column, model) if stats else None
    if interval is None:
        return None
    return [[max(value - interval.low, 0.0)], [max(interval.high - value, 0.0)]]


def pareto_figure(
    summaries: Mapping[str, Summary], stem: Path, stats: Bootstrap | None = None
) -> list[Path]:
    title = "Pareto view: every model in the Helpful–Harmless and Helpful–Honest planes"
    planes = (("Helpful Avg", "Harmless Avg"), ("Helpful Avg", "Honest Avg"))
    data = {
        plane: [
            (m, _f(s, plane[0]), _f(s, plane[1]), s.is_partial(plane[0]) or s.is_partial(plane[1]))
            for m, s in sorted(summaries.items())
            if _f(s, plane[0]) is not None and _f(s, plane[1]) is not None
        ]
        for plane in planes
    }
    if not any(data.values()):
        return no_data(stem, title, "no data yet (needs helpful and honest/harmless scores)")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    any_partial = any_bars = False
    for ax, plane in zip(axes, planes, strict=True):
        rows = data[plane]
        ax.set_xlabel(plane[0])
        ax.set_ylabel(plane[1])
        ax.set_title(f"{plane[0].split()[0]} vs. {plane[1].split()[0]}", fontsize=10)
        ax.grid(alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
            continue
        seen: set[str] = set()
        for model_id, x, y, partial in rows:
            kind = model_kind(model_id)
            color, marker = KIND_STYLE.get(kind, ("#7f7f7f", "x"))
            any_partial |= partial
            ax.scatter(
                x,
                y,
                marker=marker,
                s=60 if kind != "merge sweep" else 30,
                facecolors="none" if partial and marker not in ".x" else color,
                edgecolors=color,
                label=kind if kind not in seen else None,
                zorder=3,
            )
            xerr, yerr = _errors(stats, plane[0], model_id, x), _errors(stats, plane[1], model_id, y)
            if xerr or yerr:
                any_bars = True
                ax.errorbar(
                    x, y, xerr=xerr, yerr=yerr, fmt="none", color=color, alpha=0.4, lw=0.8, zorder=2
                )
            seen.add(kind)
        points = [(x, y) for _, x, y, _ in rows]
        front = pareto_front(points)  # type: ignore[arg-type]
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            color="black",
            linewidth=1,
            linestyle="--",
            zorder=2,
            label="non-dominated",
        )
        for n, i in enumerate(front):  # alternate above/below: neighbours on the front overlap
            ax.annotate(
                model_label(rows[i][0]),
                points[i],
                xytext=(5, 4 if n % 2 == 0 else -10),
                textcoords="offset points",
                fontsize=7,
            )
        ax.legend(fontsize=7, loc="best")
    if any_bars:
        title += f"; error bars: {100 * (1 - stats.alpha):g}% bootstrap intervals"  # type: ignore[union-attr]
    fig.suptitle(title + ("\n" + PARTIAL_NOTE.format("hollow") if any_partial else ""), fontsize=11)
    fig.tight_layout()
    return save(fig, stem)


# --- entry points -----------------------------------------------------------------------------


def write_figures(
    scores_dir: Path,
    fig_dir: Path,
    selection_dir: Path | None = None,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> list[Path]:
    """<fig_dir>/{tradeoff,seeds,density,pareto}.{png,pdf} from a scores directory; the error
    bars are bootstrap intervals from the samples files beside the scores (none without)."""
    if not scores_dir.is_dir():
        raise FileNotFoundError(f"scores directory not found: {scores_dir}")
    scores = load_scores(scores_dir)
    summaries = summarize_all(scores)
    stats = load_bootstrap(scores_dir, scores, bootstrap=bootstrap, alpha=alpha, seed=seed)
    selections = Selections.load(selection_dir or default_selection_dir(scores_dir))
    paths = tradeoff_figure(summaries, selections, fig_dir / "tradeoff", stats)
    paths += seeds_figure(summaries, fig_dir / "seeds")
    paths += density_figure(summaries, fig_dir / "density")
    paths += pareto_figure(summaries, fig_dir / "pareto", stats)
    return paths
