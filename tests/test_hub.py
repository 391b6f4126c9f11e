"""The hub artifacts of a config, the mirror that serves them, and its checks (no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mixmerge import fetch, hub
from mixmerge.catalog import catalog
from mixmerge.config import load
from mixmerge.fetch import check, lock_from_records

REPO = Path(__file__).resolve().parents[1]
# benchmark -> the lm-eval task YAML its declaration includes
LM_EVAL_TASKS = {
    name: b.options["include"] for name, b in catalog().items() if b.runner == "lm_eval"
}


def test_paper_config_artifacts_are_every_hub_read() -> None:
    arts = {a.key: a for a in fetch.config_artifacts(load(REPO / "config/paper/mistral-7b.yaml"))}
    models = sorted(k for k in arts if k.startswith("model:"))
    assert models == [
        "model:OpenSafetyLab/MD-Judge-v0.1",
        "model:RLHFlow/ArmoRM-Llama3-8B-v0.1",
        "model:mistralai/Mistral-7B-Instruct-v0.2",
    ]
    datasets = [k for k in arts if k.startswith("dataset:")]
    assert (
        len(datasets) == 10 + 4 + 2
    )  # training sets (one repo each), lm-eval repos, salad, or-bench
    assert arts["dataset:weixinchen/GRATH"].subsets == (("llama2_7b", "pretrained_gen"),)
    assert arts["dataset:bench-llm/or-bench"].subsets == (
        ("or-bench-hard-1k", "train"),
        ("or-bench-toxic", "train"),
    )
    assert arts["dataset:allenai/ai2_arc"].used_by == (
        "evaluate.benchmarks.arc_easy",
        "evaluate.benchmarks.arc_challenge",
    )
    urls = [a for a in arts.values() if a.kind == "url"]
    assert len(urls) == 2 + 3 + 1  # evalplus releases, MT-Bench files, HaluEval-Wild
    assert all(a.sha256 for a in urls if "FastChat" in a.id)


def test_tiny_config_reads_nothing_from_the_hub() -> None:
    assert fetch.config_artifacts(load(REPO / "config/config.yaml")) == []


def test_benchmark_hub_facts_match_the_libraries() -> None:
    from importlib.resources import files

    from evalplus.data import humaneval, mbpp
    from evalplus.data.utils import get_dataset_metadata

    tasks = files("lm_eval") / "tasks"

    def field(rel: str, key: str) -> str | None:  # a task YAML's key, following `include:`
        text = (tasks / rel).read_text()
        if found := re.search(rf"^{key}: (\S+)", text, re.M):
            return found.group(1)
        include = re.search(r"^include: (\S+)", text, re.M)
        return field(str(Path(rel).parent / include.group(1)), key) if include else None

    for bench, rel in LM_EVAL_TASKS.items():
        repo, names, _ = hub.LM_EVAL_DATA[bench]
        assert field(rel, "dataset_path") == repo, bench
        assert field(rel, "dataset_name") in (*names, None), bench
    versions = {
        "humaneval_plus": ("HumanEvalPlus", humaneval.HUMANEVAL_PLUS_VERSION),
        "mbpp_plus": ("MbppPlus", mbpp.MBPP_PLUS_VERSION),
    }
    for bench, (name, version) in versions.items():
        assert hub.EVALPLUS_URLS[bench] == get_dataset_metadata(name, version, False, False)[0]
    # a judged benchmark's declared hub data is its runner's default source
    for bench in catalog().values():
        if bench.options.get("data"):
            source = bench.options["data"]
            (declared,) = bench.hub["datasets"]
            assert declared["path"] == source["path"], bench.id
            assert declared["splits"] == [source["split"]], bench.id


def _parquet_repo(root: Path, splits: dict[str, list[dict]]) -> None:
    import datasets

    for split, rows in splits.items():
        (root / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows).to_parquet(
            str(root / "data" / f"{split}-00000-of-00001.parquet")
        )


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror holding one dataset repo, one model folder and one URL file."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mirror"
    repo = hub.local_path(root, "dataset", "org/pairs")
    _parquet_repo(repo, {"train": [{"q": "a"}, {"q": "b"}], "test": [{"q": "c"}]})
    model = hub.local_path(root, "model", "org/model")
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    url = "https://example.org/files/data.json"
    file = hub.local_path(root, "url", url)
    file.parent.mkdir(parents=True)
    file.write_text("[]")
    hub.write_manifest(
        root,
        {
            "dataset:org/pairs": hub.snapshot_record("dataset", "org/pairs", repo, "a" * 40, None),
            "model:org/model": hub.snapshot_record("model", "org/model", model, "b" * 40, None),
            f"url:{url}": hub.url_record(url, file),
        },
    )
    return root


def _config(**dataset) -> dict:
    return {
        "run": "r",
        "base_model": {"path": "org/model"},
        "datasets": {
            "pairs": {"loader": "lions", "path": "org/pairs", "split": "train", **dataset}
        },
        "evaluate": {
            "benchmarks": {"halueval_wild": {"data_files": "https://example.org/files/data.json"}}
        },
    }


def test_check_passes_then_names_each_problem(mirror: Path) -> None:
    assert check(_config(), mirror, None) == []
    # a wrong split names the splits that exist
    [line] = check(_config(split="training"), mirror, None)
    assert line.endswith("config None has no split 'training' (splits: train, test)")
    # a revision the mirror does not hold (a commit prefix of the held one is fine)
    [line] = check(_config(revision="v2.0"), mirror, None)
    assert line.startswith("revision mismatch: dataset org/pairs@v2.0 (used by datasets.pairs)")
    assert check(_config(revision="aaaaaaa"), mirror, None) == []
    # a lock pinning another commit; a file that changed size; a missing repo
    lock = lock_from_records({}, hub.read_manifest(mirror))
    lock["artifacts"]["model:org/model"]["commit"] = "c" * 40
    (mirror / "datasets/org/pairs/data/test-00000-of-00001.parquet").write_bytes(b"short")
    problems = check(_config(), mirror, None) + fetch.check_mirror(
        fetch.config_artifacts(_config()), mirror, lock, subsets=False
    )
    assert any(
        p.startswith("incomplete: dataset org/pairs") and "test-00000-of-00001.parquet" in p
        for p in problems
    )
    assert any(p.startswith("commit mismatch: model org/model") for p in problems)
    (mirror / "urls").rename(mirror / "gone")
    assert any(
        p.startswith("missing: url https://example.org/files/data.json")
        for p in check(_config(), mirror, None)
    )


def test_an_active_mirror_serves_models_datasets_and_urls(
    mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hub.MIRROR_ENV, str(mirror))
    assert hub.model_source("org/model", "main") == (str(mirror / "models/org/model"), None)
    assert hub.model_source("./local/dir") == ("./local/dir", None)  # local paths untouched
    assert hub.url_file("https://example.org/files/data.json").read_text() == "[]"
    assert [r["q"] for r in hub.load_dataset("org/pairs", split="test")] == ["c"]
    with pytest.raises(hub.MirrorError, match=r"^model org/absent is not in the hub mirror"):
        hub.model_source("org/absent")
    with pytest.raises(
        hub.MirrorError,
        match=r"^dataset org/pairs: no split 'dev'; available splits: train, test \(set k\.split\)$",
    ):
        hub.load_dataset("org/pairs", split="dev", key="k")
    import datasets

    with hub.mirrored_load_dataset():  # what lm-eval's built-in tasks call
        assert len(datasets.load_dataset("org/pairs", split="train")) == 2
    assert datasets.load_dataset is not None


def test_activate_turns_the_hub_off(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (hub.MIRROR_ENV, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores what activate sets
        monkeypatch.delenv(name)
    assert hub.activate({"hub": {"mirror": str(mirror)}}) == mirror
    import os

    assert (os.environ[hub.MIRROR_ENV], os.environ["HF_HUB_OFFLINE"]) == (str(mirror), "1")


def test_lock_records_commits_and_hashes(mirror: Path) -> None:
    lock = lock_from_records({"run": "r"}, hub.read_manifest(mirror))
    assert lock["artifacts"]["dataset:org/pairs"] == {"revision": None, "commit": "a" * 40}
    url = json.loads((mirror / hub.MANIFEST).read_text())["artifacts"][
        "url:https://example.org/files/data.json"
    ]
    assert lock["artifacts"]["url:https://example.org/files/data.json"] == {"sha256": url["sha256"]}


def test_fetch_downloads_locks_and_checks(mirror: Path, tmp_path: Path) -> None:
    """`mixmerge fetch` through huggingface_hub against a local stand-in for the hub, then
    `--check` offline against the lock it wrote; a second fetch reuses the locked commits."""
    import functools
    import os
    import subprocess
    import sys
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from fake_hub import FakeHub

    files = tmp_path / "www"
    files.mkdir()
    (files / "data.json").write_text('[{"id": "1"}]')

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(files)))
    threading.Thread(target=web.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{web.server_address[1]}/data.json"

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["base_model"]["path"] = "org/model"
    config["datasets"]["helpsteer"] = {"loader": "lions", "path": "org/pairs", "split": "train"}
    config["evaluate"]["benchmarks"]["halueval_wild"]["data_files"] = url
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "fetched"
    cli = str(Path(sys.executable).with_name("mixmerge"))
    with FakeHub(mirror) as fake:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
        env.update(HF_ENDPOINT=fake.endpoint, NO_PROXY="127.0.0.1", HF_HUB_DISABLE_XET="1")
        proc = subprocess.run(
            [cli, "fetch", "--config", str(config_path), "--mirror", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert fake.requests["resolve"] >= 3 and fake.requests["tree"] == 2
    web.shutdown()
    lock = json.loads((tmp_path / "run.lock.json").read_text())
    assert lock["artifacts"]["dataset:org/pairs"]["commit"] == "a" * 40
    assert lock["artifacts"]["model:org/model"]["commit"] == "b" * 40
    assert lock["artifacts"][f"url:{url}"]["sha256"] == hub.sha256_file(files / "data.json")
    fetched = hub.local_path(out, "dataset", "org/pairs") / "data" / "test-00000-of-00001.parquet"
    assert (
        fetched.read_bytes()
        == (mirror / "datasets/org/pairs/data/test-00000-of-00001.parquet").read_bytes()
    )
    ok = subprocess.run(
        [cli, "fetch", "--config", str(config_path), "--mirror", str(out), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "and its lock is present" in ok.stdout


def test_fetch_errors_name_the_artifact_and_the_fix(mirror: Path, tmp_path: Path) -> None:
    """A gated repo, a revision the hub lacks, a repo that does not exist: one line each."""
    import os
    import subprocess
    import sys

    from fake_hub import FakeHub

    cli = str(Path(sys.executable).with_name("mixmerge"))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config_path = tmp_path / "run.yaml"

    def fetch(base: dict, gated: tuple[str, ...] = ()) -> str:
        config["base_model"] = {"path": "org/model", **base}
        config_path.write_text(yaml.safe_dump(config))
        with FakeHub(mirror, gated=gated) as fake:
            env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
            env.update(HF_ENDPOINT=fake.endpoint, NO_PROXY="127.0.0.1", HF_HUB_DISABLE_XET="1")
            proc = subprocess.run(
                [cli, "fetch", "--config", str(config_path), "--mirror", str(tmp_path / "out")],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
        assert proc.returncode == 1
        return proc.stderr.strip().splitlines()[-1]

    assert fetch({}, gated=("org/model",)) == (
        "mixmerge fetch: error: model org/model (used by base_model) is gated: accept its terms "
        "on its hub page with your account, then set HF_TOKEN (or run `hf auth login`) before "
        "`mixmerge fetch`"
    )
    assert fetch({"revision": "v9"}).endswith(
        "model org/model@v9 (used by base_model): the hub has no revision 'v9' of it"
    )
    assert fetch({"path": "org/absent"}).endswith(
        "model org/absent (used by base_model): no such model repo on the hub (or it is private: "
        "set HF_TOKEN)"
    )


def test_pins_a_replica_stands_in_for_and_the_hint_for_a_missing_one(
    mirror: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica stands in for the pin the config asks for only where its manifest says so; a
    file or dataset read without a pin logs the value to pin."""
    import logging

    from mixmerge.evaluate.data_files import resolve_data_file

    monkeypatch.setenv(hub.MIRROR_ENV, str(mirror))
    url = "https://example.org/files/data.json"
    actual = hub.sha256_file(hub.local_path(mirror, "url", url))
    pin = "f" * 64
    with caplog.at_level(logging.WARNING):
        assert resolve_data_file(url)[1] == actual
        hub.load_dataset("org/pairs", split="test", key="evaluate.benchmarks.x")
    assert f"{url} is not pinned: set its sha256 to {actual}" in caplog.text
    assert f"dataset org/pairs is not pinned: set evaluate.benchmarks.x.revision: {'a' * 40}" in (
        caplog.text
    )
    with pytest.raises(ValueError, match=f"sha256 is {actual}, config expects {pin}"):
        resolve_data_file(url, pin)
    with pytest.raises(hub.MirrorError, match="asks for revision v1.0"):
        hub.load_dataset("org/pairs", split="test", revision="v1.0")
    records = hub.read_manifest(mirror)
    hub.write_manifest(
        mirror,
        {
            f"url:{url}": {**records[f"url:{url}"], "stands_in_for": {"sha256": pin}},
            "dataset:org/pairs": {
                **records["dataset:org/pairs"],
                "stands_in_for": {"revision": "v1.0"},
            },
        },
    )
    assert resolve_data_file(url, pin)[1] == actual  # the replica's own hash is what is recorded
    assert len(hub.load_dataset("org/pairs", split="test", revision="v1.0")) == 1
    art = hub.Artifact("url", url, sha256=pin)
    assert fetch.check_mirror([art], mirror, subsets=False) == []
    with pytest.raises(ValueError, match="config expects"):
        resolve_data_file(url, "e" * 64)  # another pin than the one it stands in for
