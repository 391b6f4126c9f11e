"""The run's configuration as a page of the Snakemake report (its HTML reporter shows no config).

Pygments (snakemake's `reports` extra) highlights the YAML; without it the page is plain text.
"""

from __future__ import annotations

import html
from pathlib import Path

from mixmerge.io import atomic_file


def render_config_page(config_path: Path) -> str:
    text = config_path.read_text(encoding="utf-8")
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import YamlLexer

        formatter = HtmlFormatter(linenos=False, cssclass="src")
        body = highlight(text, YamlLexer(), formatter)
        style = formatter.get_style_defs(".src")
    except ImportError:  # pragma: no cover - pygments comes with snakemake[reports]
        body, style = f'<pre class="src">{html.escape(text)}</pre>', ""
    title = f"Configuration ({html.escape(config_path.name)})"
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>body{{font-family:sans-serif;margin:1em}}pre{{font-size:12px}}{style}</style>"
        f"</head><body>\n<h2>{title}</h2>\n{body}\n</body></html>\n"
    )


def write_config_page(config_path: Path, out: Path) -> Path:
    if not config_path.is_file():
        raise FileNotFoundError(f"config file not found: {config_path}")
    page = render_config_page(config_path)
    with atomic_file(out) as handle:
        handle.write(page)
    return out
