"""`mixmerge search dev-items | run`: the held-out items, then one space's study."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_search_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `search` and its subverbs to the main CLI's subparsers; return the `search` parser."""
    search = sub.add_parser(
        "search", help="the 3H Pareto front of merge coefficients, on held-out items"
    )
    verbs = search.add_subparsers(dest="search_verb", required=True, metavar="{dev-items,run}")
    text = "write the held-out items of every benchmark the search scores, and their manifest"
    p = verbs.add_parser("dev-items", help=text, description=text)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="dev items folder (manifest.json)")
    text = "run (or resume) one space's study; write its front and the selected points' recipes"
    p = verbs.add_parser("run", help=text, description=text)
    p.add_argument("--config", required=True)
    p.add_argument("--space", required=True, help="a name of search.spaces")
    p.add_argument("--dev", required=True, metavar="DIR", help="the dev-items folder")
    p.add_argument("--out", required=True, metavar="DIR", help="the space's folder (front.json)")
    p.add_argument("--recipes", required=True, metavar="DIR", help="<point>.yaml per selected point")
    return search


def run(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    if args.search_verb == "dev-items":
        from mixmerge.evaluate.dev_items import write_dev_items
        from mixmerge.search.settings import SearchSettings

        settings = SearchSettings.from_config(cfg)
        for space in settings.spaces.values():  # the first search job: a bad space stops here
            space.check()
        manifest = write_dev_items(
            cfg["evaluate"]["benchmarks"], settings.benchmarks, settings.exclude, settings.items,
            settings.seed, Path(args.out),
        )
        for name, entry in manifest["benchmarks"].items():
            log.info("%s (%s): %d held-out items", name, entry["group"], entry["n"])
        for name, why in manifest["left_out"].items():
            log.info("%s: left out of the objectives (%s)", name, why)
        return
    from mixmerge.search.run import Search, write_outputs

    result = Search(cfg, args.space, Path(args.dev), Path(args.out)).run()
    write_outputs(result, Path(args.out), Path(args.recipes))
    log.info(
        "%s: %d trials, %d on the front, hypervolume %.1f; selected %s",
        args.space, len(result["trials"]), len(result["front"]), result["hypervolume"][-1],
        result["selected"],
    )
