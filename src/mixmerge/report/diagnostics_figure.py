"""The per-layer merge diagnostics figure, drawn from the JSON `mixmerge diagnose` writes (the
merge stage computes the diagnostics; the report only reads its file): sign conflicts, TSVM
interference, sparsity and kurtosis per transformer layer, as PNG and PDF."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixmerge.io import read_json
from mixmerge.report.plotting import no_data, pyplot, save

DIAG_PANELS = (
    ("sign_conflict", "sign-conflict rate (TIES)", None),
    ("tsvm_interference", "TSVM interference ‖(UᵀU−I)Σ(VᵀV−I)‖₁", None),
    ("sparsity", "sparsity Ω (|δ| < 0.1·mean|δ|)", "sparsity_per_task"),
    ("kurtosis", "excess kurtosis of δ (tail heaviness)", "kurtosis_per_task"),
)


def diagnostics_figure(diag: Mapping[str, Any], stem: Path, setting: str) -> list[Path]:
    title = f"Merge diagnostics per layer ({setting} setting)"
    layers = diag.get("layers") or []
    if not layers:
        return no_data(stem, title, "no data yet (no per-layer tensors diagnosed)")
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    xs = [entry["layer"] for entry in layers]
    tasks = diag.get("tasks") or []
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for ax, (key, label, per_task) in zip(axes.flat, DIAG_PANELS, strict=True):
        ys = [entry.get(key) for entry in layers]
        if per_task:
            for t, name in enumerate(tasks):
                values = [(entry.get(per_task) or [None] * len(tasks))[t] for entry in layers]
                pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), alpha=0.6, linewidth=1, label=name)
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), color="black", marker="o", ms=3, label="mean")
        else:
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(label.split(" (")[0].split(" ‖")[0])
        ax.grid(alpha=0.3)
        if per_task and tasks:
            ax.legend(fontsize=6, title="task vector", title_fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("transformer layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    recipe = Path(str(diag.get("recipe", ""))).name
    fig.suptitle(
        f"{title}: {len(tasks)} task vectors δ_i = θ_i − θ_base"
        + (f" (recipe {recipe})" if recipe else ""),
        fontsize=11,
    )
    fig.tight_layout()
    return save(fig, stem)


def write_diagnostics_figure(diag_json: Path, fig_dir: Path) -> list[Path]:
    """<fig_dir>/diagnostics_<setting>.{png,pdf}, setting = the JSON's file stem."""
    setting = diag_json.stem
    stem = fig_dir / f"diagnostics_{setting}"
    if not diag_json.is_file():
        return no_data(stem, f"Merge diagnostics per layer ({setting} setting)")
    diag = read_json(diag_json)
    layers = diag.get("layers") if isinstance(diag, Mapping) else None
    if not isinstance(layers, list) or not all(
        isinstance(entry, Mapping) and "layer" in entry for entry in layers
    ):
        raise ValueError(
            f"{diag_json}: not a diagnostics file of `mixmerge diagnose` (needs a `layers` list "
            "of {layer: ...} entries)"
        )
    return diagnostics_figure(diag, stem, setting)
