"""Replicas of the URL files of the paper configs, from ../shared/upstream-samples.

- MT-Bench (evaluate.benchmarks.mt_bench.data_files): BYTE-IDENTICAL copies of FastChat's
  question.jsonl, judge_prompts.jsonl and reference_answer/gpt-4.jsonl at commit 0e6d3e4b (the
  samples' README gives their sha256, equal to the config's pins; checked here).
- HaluEval-Wild: HaluEval_Wild_6types.json = the 120-item real sample (20 per type, upstream order
  and text) of the 600-item file; its sha256 is therefore not the real file's (the config pins none).
- evalplus (hub.EVALPLUS_URLS): HumanEvalPlus.jsonl.gz / MbppPlus.jsonl.gz = gzip of the first 10
  real problems of HumanEval+ v0.1.10 / MBPP+ v0.2.0 (gzip mtime 0, no file name: deterministic).

A builder writes the one file at `path` (hub.local_path(mirror, "url", url)).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from mixmerge.hub import EVALPLUS_URLS
from mixmerge.rehearsal.common import RehearsalError, sample_file

FASTCHAT = "https://raw.githubusercontent.com/lm-sys/FastChat/0e6d3e4beaab66f4d3f93db72541a4abab8af28d/fastchat/llm_judge/data"
HALUEVAL_WILD = "https://raw.githubusercontent.com/HaluEval-Wild/HaluEval-Wild/b1621dbb2ed7411cc6d51a517a153c2f93ec9a51/HaluEval_Wild_6types.json"

# url -> (sample file, sha256 it must have or None)
COPIES: dict[str, tuple[str, str | None]] = {
    f"{FASTCHAT}/mt_bench/question.jsonl": (
        "mt_bench/question.jsonl",
        "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    ),
    f"{FASTCHAT}/judge_prompts.jsonl": (
        "mt_bench/judge_prompts.jsonl",
        "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
    ),
    f"{FASTCHAT}/mt_bench/reference_answer/gpt-4.jsonl": (
        "mt_bench/reference_answer_gpt-4.jsonl",
        "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
    ),
    HALUEVAL_WILD: ("halueval_wild/HaluEval_Wild_6types.sample120.json", None),
}
GZIPPED: dict[str, str] = {
    EVALPLUS_URLS["humaneval_plus"]: "evalplus/HumanEvalPlus-v0.1.10.head10.jsonl",
    EVALPLUS_URLS["mbpp_plus"]: "evalplus/MbppPlus-v0.2.0.head10.jsonl",
}


def _copy(sample: str, expected: str | None) -> Callable[[Path, int], None]:
    def build(path: Path, seed: int) -> None:  # seed unused: the bytes are upstream's
        source = sample_file(sample)
        data = source.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if expected and actual != expected:
            raise RehearsalError(
                f"{source}: sha256 {actual}, expected {expected} (not the pinned upstream file)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        path.chmod(0o644)

    return build


def _gzip(sample: str) -> Callable[[Path, int], None]:
    def build(path: Path, seed: int) -> None:
        data = sample_file(sample).read_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            gz.write(data)

    return build


BUILDERS: dict[str, Callable[[Path, int], None]] = {
    **{url: _copy(sample, sha) for url, (sample, sha) in COPIES.items()},
    **{url: _gzip(sample) for url, sample in GZIPPED.items()},
}
