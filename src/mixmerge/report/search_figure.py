"""The search figure: each space's trials in the Helpful-Harmless and Helpful-Honest planes (its
front joined, its selected points marked) and its hypervolume after each trial, from the
`front.json` files of `mixmerge search run`. Objectives are dev scores, not the test scores of the
tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixmerge.io import read_json
from mixmerge.report.plotting import pyplot, save

PLANES = (("helpful", "harmless"), ("helpful", "honest"))
MARKERS = {"best_avg": "*", "knee": "D"}


def _plane(ax: Any, front: dict[str, Any], x: str, y: str, color: str) -> None:
    trials = {t["number"]: t["objectives"] for t in front["trials"]}
    ax.scatter([o[x] for o in trials.values()], [o[y] for o in trials.values()], s=14,
               color=color, alpha=0.45, label=front["space"])
    on_front = sorted((trials[k][x], trials[k][y]) for k in front["front"])
    ax.plot([p[0] for p in on_front], [p[1] for p in on_front], color=color, lw=1)
    for point, number in front["selected"].items():
        o = trials[number]
        ax.scatter([o[x]], [o[y]], marker=MARKERS.get(point, "s"), s=60, color=color,
                   edgecolor="black", linewidths=0.6, zorder=3)
    ax.set_xlabel(f"{x.capitalize()} (dev)")
    ax.set_ylabel(f"{y.capitalize()} (dev)")


def search_figure(front_files: Sequence[str | Path], png: str | Path) -> list[Path]:
    """Draw every space's front into `<png>` and its PDF twin."""
    plt = pyplot()
    fronts = [read_json(f) for f in front_files]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, front in enumerate(fronts):
        color = colors[i % len(colors)]
        for ax, (x, y) in zip(axes[:2], PLANES, strict=True):
            _plane(ax, front, x, y, color)
        hv = front["hypervolume"]
        axes[2].plot(range(1, len(hv) + 1), hv, color=color, marker=".", label=front["space"])
    axes[2].set_xlabel("trials")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_ylabel("hypervolume (dev, from 0,0,0)")
    axes[0].legend(fontsize=7, loc="best")
    marks = ", ".join(f"{m} {p}" for p, m in MARKERS.items())
    fig.suptitle(f"3H search on held-out items (lines: the front; marked: {marks})", fontsize=10)
    fig.tight_layout()
    stem = Path(png)
    return save(fig, stem.with_name(stem.stem))
