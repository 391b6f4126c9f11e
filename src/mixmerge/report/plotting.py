"""What every report figure shares: matplotlib on a file-only backend, saving as PNG and PDF
(atomically, reproducibly) and the "no data yet" placeholder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixmerge.io import atomic_file


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend, imported on first use (the CLI stays light)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, stem: Path) -> list[Path]:
    """<stem>.png and <stem>.pdf, atomically; the PDF has no timestamp (reruns are identical)."""
    paths = []
    for fmt, extra in (("png", {"dpi": 150}), ("pdf", {"metadata": {"CreationDate": None}})):
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_file(path, "wb") as handle:
            fig.savefig(handle, format=fmt, bbox_inches="tight", **extra)
        paths.append(path)
    pyplot().close(fig)
    return paths


def no_data(stem: Path, title: str, message: str = "no data yet") -> list[Path]:
    """A figure saying there is nothing to draw yet: a partial run never fails at the report."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#666666", wrap=True)
    ax.set_axis_off()
    return save(fig, stem)
