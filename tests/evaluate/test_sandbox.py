"""The OS-level boundary around the evalplus worker: hostile solutions reach nothing outside it.

Each hostile "solution" returns the right answer only when its attack worked, so an attack that
is stopped reads as an item not passed, and the evaluation itself goes on. The same attacks
under `sandbox: none` do work (the control run), so the checks are not vacuous.
"""

from __future__ import annotations

import os
import select
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from mixmerge.evaluate import evalplus_sandbox as es
from mixmerge.evaluate import isolation
from mixmerge.evaluate.evalplus_tasks import evaluate_benchmark
from mixmerge.evaluate.registry import EvalContext
from mixmerge.tiny.evalplus_fixtures import write_evalplus_fixtures

KEY = "sk-fake-0123456789abcdef"
LIMITS = {"min_time_limit": 0.5, "gt_time_limit_factor": 4.0, "max_memory_mb": 512, "parallel": 2}
PROBLEM = {  # a tiny HumanEval-shaped problem: the identity on ints
    "prompt": "def f(x):\n",
    "canonical_solution": "    return x\n",
    "entry_point": "f",
    "base_input": [[1], [2]],
    "plus_input": [[3]],
    "atol": 0,
}


def available() -> list[str]:
    return [kind for kind in isolation.KINDS if isolation.probe(kind) is None]


def boundaries() -> list[Any]:
    return [
        pytest.param(kind, marks=pytest.mark.skipif(kind not in available(), reason=str(kind)))
        for kind in isolation.KINDS
    ]


def solution(body: str) -> str:
    """`f` that runs `body` (the attack), then returns x: it passes only if the attack worked."""
    lines = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return f"def f(x):\n{lines}    return x\n"


def attacks(tmp: Path, port: int) -> dict[str, str]:
    planted, secret = tmp / "outside" / "planted.txt", tmp / "home" / "secret.txt"
    venv_file = Path(sys.prefix) / "mixmerge-sandbox-escape.txt"
    return {
        "write_io": f"import io\nio.open({str(planted)!r}, 'w').write('pwned')",
        "write_pathlib": f"import pathlib\npathlib.Path({str(planted)!r}).write_text('pwned')",
        "write_os_open": (
            f"import os\nfd = os.open({str(planted)!r}, os.O_WRONLY | os.O_TRUNC)\n"
            "os.write(fd, b'pwned')"
        ),
        "write_venv": f"import pathlib\npathlib.Path({str(venv_file)!r}).write_text('pwned')",
        "read_home": f"import io\nassert io.open({str(secret)!r}).read() == 'secret'",
        "read_results": f"import io\nio.open({str(tmp / 'project' / 'results' / 'score.json')!r})",
        "connect": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
        "env_key": (
            "import os, glob\n"
            "seen = ''.join(os.environ.values())\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            "        seen += open(path, 'rb').read().decode(errors='replace')\n"
            "    except Exception:\n"
            "        pass\n"
            f"assert {KEY[:8]!r} in seen"
        ),
        "fork": (  # os.fork is None after reliability_guard; posix.fork is not
            "import posix, time\n"
            "for _ in range(1000):\n"
            "    if posix.fork() == 0:\n"
            "        posix.closerange(3, 4096)\n"  # else evalplus waits out its timeout
            "        time.sleep(30)\n"
            "        posix._exit(0)"
        ),
    }


CONTROLLED = ("write_io", "read_home", "read_results", "connect")  # harmless to let through


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Planted files, a fake home and project (cwd), and a key in the parent's environment."""
    for rel, text in (("outside/planted.txt", "original"), ("home/secret.txt", "secret")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "project" / "results").mkdir(parents=True)
    (tmp_path / "project" / "results" / "score.json").write_text("{}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path


@pytest.fixture
def listener() -> Any:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def run(kinds: dict[str, str], sandbox: str, work: Path) -> dict[str, dict[str, str]]:
    solutions = {f"HumanEval/{i}": code for i, code in enumerate(kinds.values())}
    problems = {task_id: {**PROBLEM, "task_id": task_id} for task_id in solutions}
    _, verdicts = es.run_sandbox("humaneval", problems, solutions, work, sandbox=sandbox, **LIMITS)
    return {name: verdicts[task_id] for name, task_id in zip(kinds, solutions, strict=True)}


@pytest.mark.parametrize("kind", boundaries())
def test_hostile_solutions_reach_nothing(kind: str, planted: Path, listener: Any) -> None:
    hostile = {k: solution(v) for k, v in attacks(planted, listener.getsockname()[1]).items()}
    kinds = {"canonical_before": solution("pass"), **hostile, "canonical_after": solution("pass")}
    venv_file = Path(sys.prefix) / "mixmerge-sandbox-escape.txt"
    try:
        status = run(kinds, kind, planted / "work")
    finally:
        escaped = venv_file.exists()
        venv_file.unlink(missing_ok=True)
    # the boundary works (and, after the fork attack, still does), and every attack failed
    assert (
        status["canonical_before"] == status["canonical_after"] == {"base": "pass", "plus": "pass"}
    )
    for name in hostile:
        assert status[name]["base"] != "pass", name
    assert (planted / "outside" / "planted.txt").read_text() == "original"
    assert not escaped
    assert select.select([listener], [], [], 0)[0] == []  # no connection ever reached it
    assert KEY not in repr(status)


def test_the_attacks_work_without_a_boundary(planted: Path, listener: Any) -> None:
    every = attacks(planted, listener.getsockname()[1])
    status = run({k: solution(every[k]) for k in CONTROLLED}, "none", planted / "work")
    assert all(v == {"base": "pass", "plus": "pass"} for v in status.values()), status
    assert (planted / "outside" / "planted.txt").read_text() == "pwned"
    assert select.select([listener], [], [], 0)[0] == [listener]


def _under_tmp(path: str | Path) -> bool:
    """Inside /tmp, which the boundary replaces with a fresh tmpfs (a checkout may live there)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath("/tmp"))


def test_home_outside_tmp_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # /tmp is replaced anyway: a home elsewhere (this test's folder) must be hidden by itself
    kinds = available()
    if not kinds:
        pytest.skip("no boundary here")
    home = Path(__file__).resolve().parent
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert str(home) in isolation.layout().hidden or _under_tmp(home)  # /tmp: replaced anyway
    read = {"read": solution(f"import io\nio.open({str(Path(__file__).resolve())!r}).read()")}
    assert run(read, kinds[0], tmp_path)["read"]["base"] == "fail"
    assert run(read, "none", tmp_path)["read"]["base"] == "pass"


def test_layout_hides_home_caches_cwd_and_work_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = Path(__file__).resolve().parent
    monkeypatch.setenv("HF_HOME", str(here.parent / "data"))
    monkeypatch.chdir(here.parent.parent)  # the repository: the results tree lies under it
    lay = isolation.layout([here.parent / "judge"])
    root = str(here.parent.parent)
    assert (root in lay.hidden or _under_tmp(root)) and "/run" in lay.hidden  # a clone in /tmp
    assert not any(path.startswith(root + "/") for path in lay.hidden)  # inside the cwd: covered
    assert isolation.SRC in lay.binds or not isolation.SRC.startswith(root)
    assert all(not path.startswith(str(here.parent)) for path in lay.binds)  # tests stay hidden


def test_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("EVALPLUS_TIMEOUT_PER_TASK", "30")
    env = isolation.environment({"EVALPLUS_MAX_MEMORY_BYTES": "1"}, sandboxed=True)
    assert KEY not in env.values() and "HF_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == "/tmp" and env["EVALPLUS_TIMEOUT_PER_TASK"] == "30"
    assert env["EVALPLUS_MAX_MEMORY_BYTES"] == "1" and env["OMP_NUM_THREADS"] == "1"


def test_unprivileged_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    lay = isolation.Layout(("/home/u",), (), ("/home/u/proj/.venv",))
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    bwrap = isolation.command("bwrap", ["python"], lay)
    assert bwrap[:2] == ["bwrap", "--unshare-all"] and "setpriv" not in bwrap
    assert bwrap[bwrap.index("--tmpfs", bwrap.index("/tmp")) + 1] == "/home/u"
    at = bwrap.index("/home/u/proj")
    assert bwrap[at - 3 : at + 4] == [
        *("--perms", "0755", "--dir", "/home/u/proj"),
        *("--ro-bind", "/home/u/proj/.venv", "/home/u/proj/.venv"),
    ]
    unshare = isolation.command("unshare", ["python"], lay)
    assert unshare[:3] == ["unshare", "--user", "--map-root-user"]
    assert "--reuid" not in unshare[-1] and "exec setpriv --inh-caps=-all" in unshare[-1]
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 0)  # root: no user namespace, nobody
    assert "--reuid=65534" in isolation.command("unshare", ["python"], lay)[-1]
    assert "--unshare-all" not in isolation.command("bwrap", ["python"], lay)


def test_no_boundary_fails_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "probe", lambda kind: "setns: Operation not permitted")
    with pytest.raises(isolation.SandboxUnavailable) as err:
        isolation.choose("auto")
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, ValueError)  # the CLI's one-line errors
    for hint in ("bwrap:", "unshare:", "bubblewrap", "unprivileged_userns_clone", "sandbox: none"):
        assert hint in message
    assert isolation.choose("none") == "none"
    with pytest.raises(ValueError, match="evaluate.sandbox must be one of"):
        isolation.choose("docker")


def test_none_is_warned_about_at_workflow_start() -> None:
    config = {"evaluate": {"sandbox": "none", "benchmarks": {"mbpp_plus": {}, "gsm8k": {}}}}
    warning = isolation.sandbox_warning(config)
    assert warning and "mbpp_plus" in warning and "gsm8k" not in warning
    assert isolation.sandbox_warning({"evaluate": {"benchmarks": {"mbpp_plus": {}}}}) is None
    config["evaluate"]["benchmarks"] = {"gsm8k": {}}
    assert isolation.sandbox_warning(config) is None
    smk = Path(__file__).resolve().parents[2] / "workflow" / "rules" / "common.smk"
    assert "sandbox_warning(config)" in smk.read_text()


def test_score_record_names_the_boundary(tmp_path: Path) -> None:
    path = write_evalplus_fixtures(tmp_path / "fixtures", n_items=2, seed=0)["humaneval_plus"]
    ctx = EvalContext(
        model_dir=Path("unused"),
        benchmark="humaneval_plus",
        bench_cfg={"data_files": str(path), **LIMITS},
        eval_cfg={"device": "cpu", "sandbox": "auto"},
        work_dir=tmp_path / "work",
    )
    record = evaluate_benchmark(ctx, "humaneval_plus", generate=lambda ps: ["x = 1"] * len(ps))
    assert record["sandbox"]["boundary"] == (available() or ["none"])[0] != "none"
    assert record["score"] == 0.0


def test_schema_takes_the_sandbox_choices() -> None:
    from mixmerge.config import ConfigError, load, validate

    config = load(Path(__file__).resolve().parents[2] / "config" / "config.yaml")
    for choice in isolation.CHOICES:
        config["evaluate"]["sandbox"] = choice
        validate(config)
    config["evaluate"]["sandbox"] = "docker"
    with pytest.raises(ConfigError, match="evaluate.sandbox"):
        validate(config)
