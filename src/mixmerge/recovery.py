"""Recovering a run whose Snakemake controller was killed: remove its stale lock, safely.

A killed controller leaves `.snakemake/locks/` behind, and the next `snakemake` refuses to start
(LockException). `snakemake --unlock` removes the lock whether or not another controller still
runs in the directory; two controllers writing the same outputs corrupt them. `unlock` first
looks for a Snakemake process working in the directory on this machine (its working directory or
its --directory / -d argument, read from /proc) and refuses, naming the processes, while one runs.

What it cannot see: controllers on other machines (another login node of a cluster). Make sure
none runs there (`squeue --me` lists their jobs) before unlocking a shared directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOCKS = Path(".snakemake") / "locks"


@dataclass(frozen=True)
class Controller:
    pid: int
    command: str


def _is_snakemake(argv: list[str]) -> bool:
    """`snakemake ...`, or `python -m snakemake ...` / `python .../bin/snakemake ...`."""
    names = [Path(a).name for a in argv[:3]]
    if names and names[0] == "snakemake":
        return True
    return len(argv) > 1 and (names[1] == "snakemake" or argv[1:3] == ["-m", "snakemake"])


def _workdir(pid: int, argv: list[str]) -> Path | None:
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    for i, arg in enumerate(argv):
        if arg in ("--directory", "-d") and i + 1 < len(argv):
            return (cwd / argv[i + 1]).resolve()
        if arg.startswith("--directory="):
            return (cwd / arg.split("=", 1)[1]).resolve()
    return cwd.resolve()


def running_controllers(directory: str | Path) -> list[Controller]:
    """Snakemake processes of this machine whose working directory is `directory`."""
    target = Path(directory).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # gone, or another user's
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if argv and _is_snakemake(argv) and _workdir(int(entry.name), argv) == target:
            found.append(Controller(int(entry.name), " ".join(argv)[:200]))
    return found


def unlock(directory: str | Path, snakefile: str | Path) -> str:
    """Remove the stale lock of `directory`, or raise RuntimeError when that is not safe."""
    directory = Path(directory).resolve()
    if not (directory / LOCKS).is_dir() or not any((directory / LOCKS).iterdir()):
        return f"{directory}: no Snakemake lock, nothing to do"
    alive = running_controllers(directory)
    if alive:
        listed = "; ".join(f"pid {c.pid}: {c.command}" for c in alive)
        raise RuntimeError(
            f"{directory}: a Snakemake process still runs here ({listed}); let it finish or stop "
            "it first: unlocking now would let two runs write the same files"
        )
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "-s", str(snakefile), "--directory", str(directory), "--unlock"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake --unlock failed: {proc.stderr.strip()[-500:]}")
    return f"{directory}: unlocked (no Snakemake process runs here); rerun the same command"
