"""The SLURM profile on a real (single-node, local) SLURM: a slice of the tiny DAG runs through
snakemake-executor-plugin-slurm with `--sdm conda`, every job as an sbatch job with the resources
its rule asked for (checked in `sacct`) and in its rule's conda env, and its scores and weights
equal a local run's.

Runs when MIXMERGE_SLURM_TEST=1, which `.ci/run` sets (needs root:
scripts/slurm/start-local-slurm.sh installs the Debian packages if missing and starts munge,
MariaDB, slurmdbd, slurmctld and slurmd; the test stops them again, by PID, unless they were
already running). The profile check without SLURM (`test_profile_resources_for_the_paper_config`)
always runs.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import stand_in_conda
import yaml
from workflow_rules import rules

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
START = REPO / "scripts" / "slurm" / "start-local-slurm.sh"
STOP = REPO / "scripts" / "slurm" / "stop-local-slurm.sh"
ACCOUNT = os.environ.get("MIXMERGE_SLURM_ACCOUNT", "mixmerge-test")
# Rules of the slice that must run on the GPU partition with GPUs (profile + rule resources).
SLICE_GPU_RULES = {
    "train_candidate", "train_mix", "evaluate_model", "merge_models", "search_space",
    "merge_searched_models",
}  # fmt: skip
ENABLED = os.environ.get("MIXMERGE_SLURM_TEST") == "1"
TARGET = "report_tables"  # the 3H tables: every stage of the slice, none of the figures

pytestmark = pytest.mark.slurm


def _env(*path: Path) -> dict[str, str]:
    dirs = [*map(str, path), str(Path(sys.executable).parent), os.environ["PATH"]]
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": os.pathsep.join(dirs),
    }


def _snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env or _env(), cwd=REPO, timeout=timeout
    )


def slice_config() -> dict:
    """The tiny default cut to a slice that still has every stage up to the tables, and every
    conda env: 2 groups of 1 dataset, 1 sweep candidate, 1 heuristic data mixture, no continual
    stage, 2 merge methods, 3 benchmarks (ARC-C, TruthfulQA, XSTest), a 1-trial search of one
    space and its selected merge. 27 jobs (target `report_tables`): each SLURM job costs
    a Snakemake start inside the job, and this machine has 2 cores."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    groups = {"harmlessness": ["ultrasafety"], "helpful_honest": ["ultrafeedback"]}
    config["groups"] = groups
    config["datasets"] = {d: config["datasets"][d] for names in groups.values() for d in names}
    config["train"]["sweep"] = {
        "beta": [config["train"]["beta"]],
        "learning_rate": [config["train"]["learning_rate"]],
    }
    config["continual"] = {"stages": []}
    config["mixtures"] = {  # one data-mixture baseline: a heuristic ratio
        "strategies": ["heuristic"],
        "heuristic": {
            "ratios": [0.2],
            "helpful_groups": ["helpful_honest"],
            "other_groups": ["harmlessness"],
        },
    }
    config["merge"]["settings"] = {"static": list(groups)}
    config["merge"].pop("sweeps", None)
    config["merge"]["methods"] = dict(list(config["merge"]["methods"].items())[:2])
    benches = config["evaluate"]["benchmarks"]
    # one paper benchmark, and the two beyond the paper (extra columns, in no average)
    keep = ("arc_challenge", "truthfulqa_mc2", "xstest")
    config["evaluate"]["benchmarks"] = {name: benches[name] for name in keep}
    config["report"] = {"settings": ["static"]}
    # a search of one space, 1 trial, one selected point (its merge is evaluated like the rest);
    # the harmless objective: OR-Bench-80k's held-out prompts (XSTest has none)
    config["search"].update(trials=1, items=1, select=["best_avg"])
    config["search"]["spaces"] = {"ties": config["search"]["spaces"]["ties"]}
    return config


def test_profile_resources_for_the_paper_config(tmp_path: Path) -> None:
    """Dry run of the paper config with the SLURM profile: what each rule would ask SLURM for."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="needs the [slurm] extra")
    paper = yaml.safe_load((REPO / "config" / "paper" / "llama3-8b.yaml").read_text())
    proc = _snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(PROFILE.parent),
        "--configfile",
        str(REPO / "config" / "paper" / "llama3-8b.yaml"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _job_blocks(proc.stdout + proc.stderr)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs.values():
        by_rule.setdefault(job["rule"], []).append(job["resources"])
    profile = yaml.safe_load(PROFILE.read_text())
    site = profile["x-site"]
    gpu_rules = _gpu_rules(profile)
    assert set(by_rule) & gpu_rules >= {"train_candidate", "evaluate_model", "merge_models"}
    for rule, jobs in by_rule.items():
        for res in jobs:
            if rule == "all":
                continue
            assert res["slurm_account"] == site["account"], rule
            if rule in gpu_rules:  # and no rule asks for a GPU without being listed there
                assert res["slurm_partition"] == site["gpu_partition"], rule
                assert int(res["gpu"]) >= 1, rule
                assert int(res["cpus_per_gpu"]) >= 1 and int(res["mem_mb_per_cpu"]) >= 1, rule
            else:
                assert "gpu" not in res, f"{rule} asks for a GPU but the profile has no GPU entry"
                assert res["slurm_partition"] == site["cpu_partition"], rule
    for rule in ("train_candidate", "train_continual_stage"):  # full-parameter 8B DPO
        assert {r["gpu"] for r in by_rule[rule]} == {str(paper["train"]["gpus"])} == {"8"}
    for rule in ("evaluate_model", "merge_models", "merge_sweep_models"):
        assert {r["gpu"] for r in by_rule[rule]} == {"1"}
    for rule in ("merge_models", "merge_sweep_models"):  # up to 6 memory-mapped 8B models
        for res in by_rule[rule]:
            assert int(res["cpus_per_gpu"]) * int(res["mem_mb_per_cpu"]) >= 100_000


def _gpu_rules(profile: dict) -> set[str]:
    """Rules the profile sends to the GPU partition."""
    cpu = profile["default-resources"]["slurm_partition"]
    return {
        rule
        for rule, res in profile["set-resources"].items()
        if res.get("slurm_partition", cpu) != cpu
    }


def _job_blocks(log: str) -> dict[int, dict]:
    """Snakemake's job announcements: jobid -> {rule, wildcards, resources}."""
    jobs: dict[int, dict] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        m = re.match(r"(?:local)?rule (\w+):\n", block)
        jid = re.search(r"^\s+jobid: (\d+)$", block, re.M)
        if not m or not jid:
            continue
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        jobs[int(jid.group(1))] = {
            "rule": m.group(1),
            "wildcards": wc.group(1) if wc else "",
            "resources": resources,
        }
    return jobs


def _test_profile(directory: Path) -> Path:
    """The repo's SLURM profile with its site values (x-site) set for the local test cluster:
    the test account, its partitions (cpu, gpu), the fake GPU type, and CPUs/memory that fit a
    2-core node. Everything else (which rules go where, GPU counts, run times) is the profile's."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile.pop("x-site")
    cpu_partition = profile["default-resources"]["slurm_partition"]
    profile["default-resources"].update(slurm_account=ACCOUNT, slurm_partition="cpu", mem_mb=1000)
    # One CPU per GPU (the node has 2 cores), and a memory size per kind of GPU job (train,
    # evaluate, merge: entries the profile shares through anchors), so that sacct shows which
    # profile entry each job got.
    per_kind: dict[int, int] = {}
    for res in profile["set-resources"].values():
        if res.get("slurm_partition", cpu_partition) != cpu_partition:
            res["slurm_partition"] = "gpu"  # the test cluster's partitions: cpu and gpu
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = 1
        if "mem_mb_per_cpu" in res:
            res["mem_mb_per_cpu"] = per_kind.setdefault(id(res), 1100 + 100 * len(per_kind))
        if "gpu_model" in res:
            res["gpu_model"] = "fake"  # the type of the test cluster's GPUs
    profile.update(
        {
            "jobs": 4,
            "latency-wait": 5,
            "slurm-init-seconds-before-status-checks": 1,
            "seconds-between-status-checks": 1,  # the default 10 s per round dominates a tiny run
            "slurm-keep-successful-logs": True,
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def _slurm_up() -> bool:
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "UP" in out.stdout


def start_local_slurm() -> bool:
    """Start the local SLURM unless one is up; True when this call started it (stop it then)."""
    if shutil.which("sbatch") and _slurm_up():
        return False
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)
        raise RuntimeError(f"start-local-slurm.sh failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"\nlocal SLURM started in {time.monotonic() - t0:.1f}s:\n{proc.stdout}")
    return True


def stop_local_slurm() -> None:
    subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)


def can_run_slurm() -> bool:
    return ENABLED and ((shutil.which("sbatch") is not None and _slurm_up()) or os.geteuid() == 0)


def write_slice_config(base: Path) -> Path:
    config_file = base / "slice.yaml"
    if not config_file.is_file():
        config_file.write_text(yaml.safe_dump(slice_config(), sort_keys=False))
    return config_file


def run_slice(base: Path) -> dict:
    """The slice on SLURM (with --sdm conda) and, alongside, the same slice run locally, killed
    and recovered on the way (`killed_and_recovered_run`); raises RuntimeError naming what
    failed."""
    config_file = write_slice_config(base)
    profile = _test_profile(base / "profile")
    slurm_dir = base / "slurm"
    # The SLURM run also deploys the rules' conda envs (--sdm conda), as on a cluster. conda and
    # conda-forge are out of reach here: a stand-in conda "solves" each env file against this
    # venv (tests/stand_in_conda.py); Snakemake's env handling, post-deploy and activation are real.
    conda_root = base / "conda"
    conda_bin = stand_in_conda.install(conda_root)

    # The local reference run goes alongside the SLURM run: the SLURM run mostly waits (for the
    # executor's status polls, which back off by 10 s while no job finishes), so the two together
    # take little longer than the SLURM run alone.
    t0 = time.monotonic()
    local: dict = {}

    def run_locally() -> None:
        try:
            local["result"] = killed_and_recovered_run(
                base, config_file, random.Random(time.time_ns())
            )
        except BaseException as err:  # re-raised below
            local["error"] = err

    side = threading.Thread(target=run_locally, daemon=True)
    side.start()
    # the target first: --configfile takes every argument that follows it
    slurm = _snakemake(
        slurm_dir,
        TARGET,
        "--profile", str(profile),
        "--sdm", "conda",
        "--conda-prefix", str(base / "envs"),
        "--configfile", str(config_file),
        env=_env(conda_bin),
    )  # fmt: skip
    t_slurm = time.monotonic() - t0
    side.join(timeout=900)
    t_both = time.monotonic() - t0
    slurm_log = slurm.stdout + slurm.stderr
    (base / "slurm.log").write_text(slurm_log)
    if slurm.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-2000:]}" for p in sorted(slurm_dir.rglob("*.log"))
        )
        raise RuntimeError(f"snakemake (slurm) failed:\n{slurm_log[-6000:]}\n{logs[-12000:]}")
    if "error" in local:
        raise local["error"]
    if "result" not in local:
        raise RuntimeError("the local reference run did not finish in 900 s")
    print(f"\nslice: SLURM run {t_slurm:.1f}s, SLURM + local reference run {t_both:.1f}s")
    return {
        "slurm_dir": slurm_dir,
        "local_dir": local["result"]["workdir"],
        "local": local["result"],
        "slurm_log": slurm_log,
        "conda_root": conda_root,
        "envs": base / "envs",
    }


MIXMERGE = str(Path(sys.executable).with_name("mixmerge"))


def killed_and_recovered_run(base: Path, config_file: Path, rng: random.Random) -> dict:
    """The local reference run, interrupted as a user's may be, and recovered as the README
    says: SIGKILL the controller and its jobs (a lost login session) once a random number of jobs
    is done, `mixmerge unlock`, then the same command again. Then a dry run (nothing left to do)
    and `--forcerun evaluate_model` on the base model's scores (nothing generated again)."""
    workdir = base / "local"
    command = (TARGET, "--cores", "2", "--configfile", str(config_file))
    log = base / "local.log"
    stop_after = rng.randint(2, 9)
    t0 = time.monotonic()
    proc = _snakemake_bg(log, workdir, *command, new_session=True)
    locks = workdir / ".snakemake" / "locks"
    refused = None
    deadline = time.monotonic() + 600
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if refused is None and locks.is_dir() and any(locks.iterdir()):
                # while the controller lives, unlocking is refused
                refused = subprocess.run(
                    [MIXMERGE, "unlock", "--directory", str(workdir)],
                    capture_output=True, text=True, env=_env(), timeout=120,
                )  # fmt: skip
            if log.read_text().count("Finished job") >= stop_after:
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the controller and every job it started
        proc.wait(timeout=60)
    killed_at = log.read_text().count("Finished job")
    stale = locks.is_dir() and any(locks.iterdir())
    unlocked = subprocess.run(
        [MIXMERGE, "unlock", "--directory", str(workdir)],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    again = _snakemake(workdir, *command)
    t_run = time.monotonic() - t0
    dry = _snakemake(workdir, TARGET, "-n", *command[1:])
    base_scores = workdir / "results" / "tiny" / "scores" / "base"
    first = {p.name: json.loads(p.read_text()) for p in base_scores.glob("*.json")}
    t1 = time.monotonic()
    target = f"results/tiny/scores/base/{next(iter(slice_config()['evaluate']['benchmarks']))}.json"
    forced = _snakemake(workdir, target, "--forcerun", "evaluate_model", *command[1:])
    t_forced = time.monotonic() - t1
    return {
        "workdir": workdir,
        "stop_after": stop_after,
        "killed_at": killed_at,
        "stale_lock": stale,
        "refused": refused,
        "unlocked": unlocked,
        "rerun": again,
        "dry_run": dry,
        "seconds": t_run,
        "forced": forced,
        "forced_seconds": t_forced,
        "base_before": first,
        "base_after": {p.name: json.loads(p.read_text()) for p in base_scores.glob("*.json")},
    }


class SliceInBackground:
    """The SLURM slice started when the session starts (tests/conftest.py): it mostly waits on
    SLURM, so the rest of the suite runs meanwhile instead of after it."""

    def __init__(self, base: Path) -> None:
        self.started_slurm = False
        self._result: dict | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(base,), daemon=True)
        self._thread.start()

    def _run(self, base: Path) -> None:
        try:
            self.started_slurm = start_local_slurm()
            self._result = run_slice(base)
        except BaseException as err:  # re-raised in the test's fixture
            self._error = err

    def result(self) -> dict:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        self._thread.join()
        if self.started_slurm:
            stop_local_slurm()


BACKGROUND: SliceInBackground | None = None  # set by tests/conftest.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not ENABLED:
        pytest.skip("set MIXMERGE_SLURM_TEST=1 to run the SLURM test (root; starts a local SLURM)")
    if BACKGROUND is not None:
        try:
            result = BACKGROUND.result()
        except RuntimeError as err:
            pytest.fail(str(err))
        yield result
        return
    if not can_run_slurm():
        pytest.skip("starting the local SLURM needs root")
    started = start_local_slurm()
    try:
        yield run_slice(tmp_path_factory.mktemp("slurm-slice"))
    except RuntimeError as err:
        pytest.fail(str(err))
    finally:
        if started:
            stop_local_slurm()


def _snakemake_bg(
    log: Path, workdir: Path, *args: str, new_session: bool = False
) -> subprocess.Popen:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    with log.open("w") as out:  # a file, not a pipe: nobody reads it until the run ends
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=REPO,
            start_new_session=new_session,  # its own process group, to kill it whole
        )


def _sacct(workdir: Path, expected: int, timeout: float = 30) -> list[dict]:
    """This run's jobs (by working directory) from the accounting database, once all are in."""
    fields = "JobID,JobName,Comment,Account,Partition,AllocTRES,Timelimit,State,ExitCode,WorkDir"
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-a", "-X", "-P", "-n", "-S", "now-2hours", "-o", fields],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = [
            dict(zip(fields.split(","), line.split("|"), strict=True)) for line in out.splitlines()
        ]
        rows = [r for r in rows if r["WorkDir"].rstrip("/") == str(workdir)]
        if len(rows) >= expected and all(r["State"] == "COMPLETED" for r in rows):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(1)


def _tres(alloc: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in alloc.split(",") if "=" in kv)


def _mb(value: str) -> int:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return round(float(value[:-1]) * units[value[-1]]) if value[-1] in units else int(value)


def test_every_job_ran_on_slurm_with_its_rule_resources(runs: dict) -> None:
    log = runs["slurm_log"]
    jobs = _job_blocks(log)
    submitted = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    }
    remote = {jid: job for jid, job in jobs.items() if job["rule"] != "all"}
    assert set(submitted) == set(remote), "every job of the slice is an sbatch job"
    rules = {job["rule"] for job in remote.values()}
    assert rules >= SLICE_GPU_RULES | {
        "tiny_fixtures", "dataset_pairs", "mix_heuristic_pairs", "train_mix", "report_tables"
    }  # fmt: skip

    rows = {r["JobID"]: r for r in _sacct(runs["slurm_dir"], len(submitted))}
    profile = yaml.safe_load((runs["slurm_dir"].parent / "profile" / "config.yaml").read_text())
    gpu_rules = _gpu_rules(profile)
    run_ids = set()
    for jid, slurm_id in sorted(submitted.items()):
        job, row = remote[jid], rows.get(slurm_id)
        assert row is not None, f"SLURM job {slurm_id} ({job['rule']}) missing from sacct"
        res = job["resources"]
        where = f"{job['rule']} {job['wildcards']} (SLURM job {slurm_id}): {row}"
        assert row["State"] == "COMPLETED" and row["ExitCode"] == "0:0", where
        assert row["Comment"].startswith(f"rule_{job['rule']}"), where
        assert row["Account"] == ACCOUNT == res["slurm_account"], where
        assert row["Partition"] == res["slurm_partition"], where
        assert row["Timelimit"] == _timelimit(int(res["runtime"])), where
        run_ids.add(row["JobName"])  # the plugin names every job after the run's UUID
        tres = _tres(row["AllocTRES"])
        gpus = int(res.get("gpu", 0))
        assert int(tres.get("gres/gpu", 0)) == gpus, where
        if gpus:
            assert job["rule"] in gpu_rules, where
            assert tres.get(f"gres/gpu:{res['gpu_model']}") == str(gpus), where
            cpus = gpus * int(res["cpus_per_gpu"])
            assert int(tres["cpu"]) == cpus, where
            assert _mb(tres["mem"]) == cpus * int(res["mem_mb_per_cpu"]), where
        else:
            assert job["rule"] not in gpu_rules, where
            assert int(tres["cpu"]) == 1, where
            assert _mb(tres["mem"]) == int(res["mem_mb"]), where
    assert len(run_ids) == 1
    # and what Snakemake asked for is the profile's entry for the rule (over default-resources)
    for job in remote.values():
        want = {**profile["default-resources"], **profile["set-resources"].get(job["rule"], {})}
        got = {k: job["resources"].get(k) for k in want}
        assert got == {k: str(v) for k, v in want.items()}, job
    # GPU jobs are the rules the profile sends to the GPU partition, and all of them ask for GPUs
    assert {j["rule"] for j in remote.values() if "gpu" in j["resources"]} == rules & gpu_rules
    train = [j for j in remote.values() if j["rule"].startswith("train_")]
    assert train and all(j["resources"]["gpu"] == "1" for j in train)  # tiny: train.gpus = 1


def _timelimit(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def _scores(root: Path) -> dict[str, dict]:
    """Every score record, with the run's own directory (in lm-eval's task config) made relative
    and the bookkeeping (wall time, what was generated or read from a cache, judge requests) left
    out: the only things that may differ between two runs."""
    out = {}
    for path in sorted((root / "results" / "tiny" / "scores").rglob("*.json")):
        data = json.loads(path.read_text().replace(str(root), "<workdir>"))
        # how the run went, not results (a resumed run reads judge verdicts from its cache)
        for bookkeeping in ("seconds", "generated", "cached", "judge_usage"):
            data.pop(bookkeeping, None)
        out[str(path.relative_to(root))] = data
    return out


def _tensors(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "results" / "tiny" / "models").rglob("*.safetensors"))
    }


def test_a_killed_run_recovers_as_the_readme_says(runs: dict) -> None:
    """SIGKILL at a random point, `mixmerge unlock`, the same command: the run completes, and
    its outputs equal the uninterrupted SLURM run's (test_slurm_results_equal_a_local_run)."""
    rec = runs["local"]
    print(f"\nkilled after {rec['killed_at']} finished jobs (aimed at {rec['stop_after']})")
    assert rec["refused"] is not None and rec["refused"].returncode != 0
    assert "still runs here" in rec["refused"].stderr  # never unlocked under a live run
    assert rec["stale_lock"] and rec["unlocked"].returncode == 0, rec["unlocked"].stderr
    rerun = rec["rerun"]
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    dry = rec["dry_run"]
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_a_forced_reevaluation_generates_nothing(runs: dict) -> None:
    """`--forcerun evaluate_model` redoes the job, but every reply comes from the cache."""
    rec = runs["local"]
    forced = rec["forced"]
    assert forced.returncode == 0, (forced.stdout + forced.stderr)[-4000:]
    before, after = rec["base_before"], rec["base_after"]
    assert before and after.keys() == before.keys()
    seconds = {name: (before[name]["seconds"], after[name]["seconds"]) for name in before}
    print(
        f"\nslice run {rec['seconds']:.1f}s; forced re-evaluation of the base model "
        f"{rec['forced_seconds']:.1f}s; per benchmark (first, forced) seconds: {seconds}"
    )
    for name, record in after.items():
        assert record["generated"] == {"model": 0, "judge": 0}, name
        # the first run's replies: generated, or read from the cache where the kill fell inside
        # this evaluation and the recovering run resumed it
        replies = before[name]["generated"]["model"] + before[name]["cached"]["model"]
        assert record["cached"]["model"] == replies > 0, name
        assert record["score"] == before[name]["score"], name


def test_slurm_results_equal_a_local_run(runs: dict) -> None:
    slurm, local = _scores(runs["slurm_dir"]), _scores(runs["local_dir"])
    # base, 2 DPO, 1 mixture, 2 merges, 1 searched merge, each on every benchmark of the slice
    assert len(slurm) == 7 * len(slice_config()["evaluate"]["benchmarks"])
    assert slurm == local
    assert _tensors(runs["slurm_dir"]) == _tensors(runs["local_dir"])  # bitwise, every model
    table = "results/tiny/tables/static.csv"
    assert (runs["slurm_dir"] / table).read_text() == (runs["local_dir"] / table).read_text()


def test_slurm_jobs_ran_in_their_rules_conda_envs(runs: dict) -> None:
    """Every SLURM job activated the env its rule names; each env got mixmerge from this checkout
    through envs/install-mixmerge.sh."""
    from collections import Counter

    env_of_prefix = {}
    for prefix in (p for p in runs["envs"].iterdir() if p.is_dir()):
        spec = Path(f"{prefix}.yaml").read_text()  # Snakemake's copy of the env file
        group = next(g.stem for g in (REPO / "envs").glob("*.yaml") if g.read_text() == spec)
        env_of_prefix[str(prefix)] = group
        assert (prefix / "bin" / "mixmerge").is_file(), f"post-deploy left no mixmerge in {group}"
    activations = (runs["conda_root"] / "activations.log").read_text().split()
    jobs = [j["rule"] for j in _job_blocks(runs["slurm_log"]).values() if j["rule"] != "all"]
    rule_env = {name: info["env"] for name, info in rules().items()}
    # one activation per job, plus one per env for its post-deploy script
    want = Counter(rule_env[rule] for rule in jobs) + Counter(set(env_of_prefix.values()))
    assert Counter(env_of_prefix[a.rstrip("/")] for a in activations) == want
    assert set(env_of_prefix.values()) == {"train", "judge", "eval", "merge", "report"}


def test_the_local_tiny_run_is_complete_and_clean(runs: dict) -> None:
    """The reference run is the tiny default profile end to end (data, DPO, a mixture, merges,
    evaluation, tables): every model loads offline, every job left a log without lm-eval's git
    noise, and nothing half-written is left (a rerun had nothing to do: the recovery test)."""
    from transformers import AutoModelForCausalLM

    from mixmerge.report.scores import TITLES

    local = runs["local_dir"]
    rows = list(csv.DictReader((local / "results/tiny/tables/static.csv").open()))
    config = slice_config()
    merges = sorted(r["model"] for r in rows if r["section"] == "Model merging")
    assert merges == sorted(f"merge/static/{m}" for m in config["merge"]["methods"])
    # the slice's own models (the table also lists the paper's other groups, as n/a)
    scores = local / "results/tiny/scores"
    scored = [r for r in rows if r["model"] and (scores / r["model"]).is_dir()]
    assert len(scored) == 1 + len(config["groups"]) + 1 + len(merges) + 1  # + mixture, searched
    searched = [(r["label"], r["model"]) for r in rows if r["section"] == "Searched merge"]
    assert searched == [("Searched: ties (best_avg)", "merge/searched/ties/best_avg")]
    for row in scored:
        for bench in config["evaluate"]["benchmarks"]:
            assert 0.0 <= float(row[TITLES[bench]]) <= 100.0, (row["model"], bench)
    # the paper's averages are over its own benchmarks only (here: ARC-C, in Helpful Avg)
    assert all(row["Helpful Avg"] == row["ARC-C"] for row in scored)
    models = sorted(p.parent for p in (local / "results/tiny/models").rglob("config.json"))
    assert len(models) >= 6
    for model in models:
        AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
    logs = list((local / "results/tiny/logs").rglob("*.log"))
    assert len(logs) >= 15
    assert not [p.name for p in logs if "fatal: not a git repository" in p.read_text()]
    assert not list((local / "results").rglob("*.tmp"))
