"""The `mixmerge` command: one verb per pipeline stage. Every Snakemake rule calls one of these."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("mixmerge")


def _config(path: str) -> dict:
    """The validated config; with a hub mirror configured, this process reads only from it."""
    from mixmerge import config
    from mixmerge.hub import activate

    cfg = config.load(path)
    activate(cfg)
    return cfg


def cmd_fetch(args: argparse.Namespace) -> None:
    from mixmerge import config, hub
    from mixmerge.fetch import check, fetch, lock_path

    cfg = config.load(args.config)
    mirror = Path(args.mirror).resolve() if args.mirror else hub.mirror_dir(cfg)
    if mirror is None:
        raise ValueError(f"no mirror: pass --mirror DIR or set hub.mirror / ${hub.MIRROR_ENV}")
    lock_file = Path(args.lock) if args.lock else lock_path(args.config)
    if args.check:
        problems = check(cfg, mirror, lock_file if lock_file.is_file() else None)
        for line in problems:
            print(line)
        if problems:
            raise ValueError(
                f"the hub mirror {mirror} has {len(problems)} problem(s) (listed above)"
            )
        locked = "and its lock " if lock_file.is_file() else ""
        print(f"{mirror}: every artifact of {args.config} {locked}is present")
        return
    lock = fetch(cfg, mirror, lock_file)
    log.info("%d artifacts in %s; lock written to %s", len(lock["artifacts"]), mirror, lock_file)


def cmd_tiny(args: argparse.Namespace) -> None:
    from mixmerge.tiny.build import build_tiny

    tiny = _config(args.config).get("tiny", {}) if args.config else {}
    build_tiny(
        args.out,
        pairs_per_dataset=tiny.get("pairs_per_dataset", 24),
        items_per_benchmark=tiny.get("items_per_benchmark", 8),
        seed=args.seed,
    )
    log.info("tiny model and fixtures written to %s", args.out)


def cmd_rehearsal_mirror(args: argparse.Namespace) -> None:
    from mixmerge.rehearsal import build_mirror

    configs = [Path(c) for c in args.config] or sorted(
        (Path(__file__).resolve().parents[2] / "config" / "paper").glob("*.yaml")
    )
    built = build_mirror(Path(args.out), configs, force=args.force)["artifacts"]
    fresh = sum(1 for a in built.values() if a["built"])
    log.info("rehearsal mirror %s: %d artifacts (%d built now)", args.out, len(built), fresh)


def cmd_base(args: argparse.Namespace) -> None:
    """Materialise the base model as a local directory (a hub download or a local copy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mixmerge.hub import model_source
    from mixmerge.io import atomic_dir
    from mixmerge.model_hash import write_hash

    base = _config(args.config)["base_model"]
    path, revision = model_source(base["path"], base.get("revision"))
    kwargs = {"revision": revision, "trust_remote_code": base.get("trust_remote_code", False)}
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_hash(tmp)


def cmd_data(args: argparse.Namespace) -> None:
    from mixmerge.config import group_of
    from mixmerge.data.prepare import prepare_dataset
    from mixmerge.data.settings import DataSettings

    cfg = _config(args.config)
    settings = DataSettings.from_config(cfg)
    dataset = settings.dataset(args.dataset)  # an unknown name fails here, naming the known ones
    group = group_of(cfg, args.dataset)
    stats = prepare_dataset(args.dataset, dataset, group, args.out, settings)
    log.info(
        "%s: %d pairs from %d rows (dropped %s)",
        args.dataset,
        stats["pairs"],
        stats["rows"],
        stats["dropped"],
    )


def cmd_mix(args: argparse.Namespace) -> None:
    from mixmerge.mix import MixContext, MixSettings, build_mix

    cfg = _config(args.config)
    evaluate = cfg["evaluate"]
    record = build_mix(
        args.strategy,
        MixSettings.from_config(cfg),
        {Path(p).stem: Path(p) for p in args.pairs},
        cfg["groups"],
        Path(args.out),
        ratio=args.ratio,
        context=MixContext(
            cache_dir=args.cache_dir,
            device=args.device,
            policy=args.policy,
            judge=evaluate.get("judge"),
            generation=evaluate.get("generation"),
        ),
    )
    log.info("%s mix: %d pairs -> %s", args.strategy, record["composition"]["pairs"], args.out)


def cmd_train(args: argparse.Namespace) -> None:
    from mixmerge.train.dpo import train_dpo
    from mixmerge.train.settings import TrainSettings

    settings = TrainSettings.from_config(_config(args.config)).with_candidate(args.beta, args.lr)
    summary = train_dpo(args.model, args.data, args.out, settings)
    log.info(
        "trained %s: %d pairs, %d steps, loss %.4f",
        args.out,
        summary["pairs"],
        summary["steps"],
        summary["train_loss"],
    )


def cmd_select(args: argparse.Namespace) -> None:
    from mixmerge.selection import select_best

    models = Path(args.models) if args.models else None
    record = select_best(
        Path(args.scores), args.candidates, args.criterion, Path(args.out), models
    )
    value = record["scores"][record["selected"]]
    if value is None:  # the only candidate: picked without an evaluation
        log.info("selected %s (the only candidate, not evaluated)", record["selected"])
    else:
        log.info("selected %s (%s = %.4f)", record["selected"], args.criterion, value)


def cmd_recipe(args: argparse.Namespace) -> None:
    from mixmerge.merge.from_config import recipe_vocab_warning, write_recipe
    from mixmerge.merge.settings import RecipeSettings

    settings = RecipeSettings.from_config(_config(args.config))
    recipe = write_recipe(settings, args.method, args.setting, args.out, args.variant)
    log.info(
        "recipe %s: %s over %d models", args.out, recipe["merge_method"], len(recipe["models"])
    )
    where = f"to merge.tokenizer or merge.methods.{args.method}.tokenizer"
    mismatch = recipe_vocab_warning(recipe, where)  # said before the merge job starts
    if mismatch:
        log.warning("recipe %s: %s", args.out, mismatch)


def cmd_merge(args: argparse.Namespace) -> None:
    from mixmerge.merge import run_merge

    run_merge(args.recipe, args.out, device=args.device, seed=args.seed, progress=not args.quiet)
    log.info("merged model written to %s", args.out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mixmerge.evaluate.run import evaluate_model

    cfg = _config(args.config)
    for name in args.benchmarks.split(","):
        record = evaluate_model(cfg, Path(args.model), name, Path(args.out))
        log.info(
            "%s on %s: %.2f (%s, n=%d)",
            args.model,
            name,
            record["score"],
            record["metric"],
            record["n"],
        )


def cmd_report(args: argparse.Namespace) -> None:
    from mixmerge.report.commands import run

    run(args)


def cmd_search(args: argparse.Namespace) -> None:
    from mixmerge.search.commands import run

    run(args, _config(args.config))


def cmd_diagnose(args: argparse.Namespace) -> None:
    from mixmerge.merge.diagnostics import diagnose

    result = diagnose(args.recipe, args.out, device=args.device, interference=args.interference)
    overall = result["overall"]
    shown = {k: overall[k] for k in ("sign_conflict", "sparsity", "kurtosis")}
    log.info(
        "%s: %d tensors, %d layers; %s",
        args.out,
        overall["n_tensors"],
        len(result["layers"]),
        ", ".join(f"{k} {'n/a' if v is None else f'{v:.4g}'}" for k, v in shown.items()),
    )


def cmd_unlock(args: argparse.Namespace) -> None:
    from mixmerge.recovery import unlock

    snakefile = Path(args.snakefile) if args.snakefile else Path(__file__).parents[2] / "Snakefile"
    if not snakefile.is_file():
        raise SystemExit(f"mixmerge unlock: no Snakefile at {snakefile}: pass --snakefile")
    try:
        log.info("%s", unlock(args.directory, snakefile))
    except RuntimeError as err:
        raise SystemExit(f"mixmerge unlock: {err}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixmerge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("tiny", help="build the tiny offline model, tokenizer and fixture data")
    p.add_argument("--config", help="read tiny.* sizes from this config")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny)

    p = sub.add_parser(
        "fetch", help="download the config's hub artifacts into a mirror, or check one"
    )
    p.add_argument("--config", required=True)
    p.add_argument(
        "--mirror", help="mirror directory (default: hub.mirror, else $MIXMERGE_HUB_MIRROR)"
    )
    p.add_argument("--lock", help="lock file (default: <config stem>.lock.json beside the config)")
    p.add_argument("--check", action="store_true", help="verify the mirror offline; no download")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "rehearsal-mirror",
        help="build a hub mirror of tiny replicas, shaped like the hub repos, for paper configs",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        help="paper config (repeatable; default: config/paper/*.yaml)",
    )
    p.add_argument("--out", required=True, help="mirror directory")
    p.add_argument("--force", action="store_true", help="rebuild every replica")
    p.set_defaults(func=cmd_rehearsal_mirror)

    p = sub.add_parser("base", help="save the configured base model as a local model directory")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_base)

    p = sub.add_parser("data", help="load, normalise and clean one dataset into preference pairs")
    p.add_argument("--config", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="pairs JSONL (stats go beside it)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("mix", help="build a data-mixture baseline from the datasets' pair files")
    p.add_argument("--config", required=True)
    p.add_argument("--strategy", required=True, choices=["heuristic", "armorm", "hummer"])
    p.add_argument("--pairs", required=True, nargs="+", help="<dataset>.jsonl pair files")
    p.add_argument("--out", required=True, help="mixed pairs JSONL; <stem>.mix.json goes beside it")
    p.add_argument("--ratio", type=float, help="heuristic: (honesty + harmlessness) / helpfulness")
    p.add_argument("--policy", help="armorm on_policy: policy model dir (the base model)")
    p.add_argument("--device", help="reward model / policy / local judge device")
    p.add_argument("--cache-dir", help="score/label/sample caches (kept across reruns)")
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("train", help="DPO-train a model on one or more pair files")
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True, help="starting model directory")
    p.add_argument("--data", required=True, nargs="+", help="pair JSONL files")
    p.add_argument("--out", required=True)
    p.add_argument("--beta", type=float)
    p.add_argument("--lr", type=float)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("select", help="pick the best candidate model by a 3H criterion")
    p.add_argument(
        "--scores", required=True, help="scores root (scores/<model id>/<benchmark>.json)"
    )
    p.add_argument("--candidates", required=True, nargs="+", help="candidate model ids")
    p.add_argument("--criterion", default="AVG", help="AVG, 'Helpful Avg', ... or a benchmark id")
    p.add_argument(
        "--models", help="models root: record each candidate's training pairs and hyperparameters"
    )
    p.add_argument("--out", required=True, help="selection JSON")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser(
        "recipe", help="write the merge recipe (MergeKit YAML) of a configured method"
    )
    p.add_argument("--config", required=True)
    p.add_argument("--setting", required=True, help="a name under merge.settings")
    p.add_argument("--method", required=True, help="a name under merge.methods")
    p.add_argument("--variant", help="seed<N> or density<D> (robustness sweeps)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_recipe)

    p = sub.add_parser("merge", help="merge models as a recipe says")
    p.add_argument("recipe")
    p.add_argument("out")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser(
        "unlock",
        help="remove the stale lock a killed Snakemake run left, once none runs in the directory",
    )
    p.add_argument("--directory", default=".", help="the run's working directory (default: .)")
    p.add_argument("--snakefile", help="default: the Snakefile of this checkout")
    p.set_defaults(func=cmd_unlock)

    p = sub.add_parser("evaluate", help="score a model on benchmarks")
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--benchmarks", required=True, help="comma-separated benchmark ids")
    p.add_argument("--out", required=True, help="scores directory (<benchmark>.json)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("diagnose", help="per-layer task-vector diagnostics of a merge recipe")
    p.add_argument("recipe", help="merge recipe (MergeKit YAML with base_model and models)")
    p.add_argument("out", help="diagnostics JSON (`mixmerge report diagnostics` draws it)")
    p.add_argument("--device", default="cpu", help="torch device for the SVDs (e.g. cuda)")
    p.add_argument(
        "--no-interference",
        dest="interference",
        action="store_false",
        help="skip the TSVM interference (the per-task SVDs, the costly part)",
    )
    p.set_defaults(func=cmd_diagnose)

    from mixmerge.report.commands import add_report_parser  # the report stage owns its options

    add_report_parser(sub).set_defaults(func=cmd_report)
    from mixmerge.search.commands import add_search_parser

    add_search_parser(sub).set_defaults(func=cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        if args.verbose:
            raise
        message = err.args[0] if err.args else repr(err)
        print(f"mixmerge {args.verb}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
