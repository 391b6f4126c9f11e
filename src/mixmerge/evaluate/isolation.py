"""The OS-level boundary around the evalplus worker: bubblewrap or util-linux unshare.

evalplus's `reliability_guard` says of itself that it "is NOT a security sandbox": after it,
`io.open(...).write`, `pathlib.Path.write_text`, `posix.fork` and sockets still work. So the
worker (`python -m mixmerge.evaluate.evalplus_sandbox`) runs inside a boundary made by a
well-kept tool, chosen at run time by `evaluate.sandbox` (auto | bwrap | unshare | none):

- network: a new, empty network namespace (bwrap brings up a private loopback; `unshare`
  leaves it down): the host's loopback and network are out of reach;
- file system: the host's tree read-only; a fresh size-capped tmpfs as /tmp (the only
  writable place, with /dev/shm); empty read-only tmpfs over $HOME, the HF and XDG caches, the
  pipeline's working directory (the results tree), the job's work dir, /run and /var/tmp; what the
  interpreter needs from under those (the venv, the base interpreter, mixmerge's source) is bound
  back read-only; a minimal /dev;
- processes: new pid, ipc and uts namespaces (its own /proc; every process in it dies with the
  worker); the worker caps RLIMIT_NPROC. Root is exempt from RLIMIT_NPROC, so under root the
  worker runs as nobody (65534); otherwise as the user. No capabilities, no_new_privs;
- environment: a clean one (`environment`): no API keys, tokens or cloud credentials.

`auto` takes the first of bwrap, unshare that works here: each is probed once per process by
running the interpreter inside the full boundary (bwrap may be installed yet fail in a container,
and a hidden library path would silently load another libpython: the probe compares versions).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("bwrap", "unshare")  # strongest first: bwrap also gives a fresh minimal /dev
CHOICES = ("auto", *KINDS, "none")
NOBODY = 65534
SCRATCH_BYTES = 512 * 2**20  # /tmp: evalplus's per-check temp dirs; caps what code can fill
SHM_BYTES = 64 * 2**20  # /dev/shm: multiprocessing's shared values
# sockets (docker, dbus, ssh agents) and other jobs' files
ALWAYS_HIDDEN = ("/run", "/var/run", "/var/tmp")
CACHE_VARIABLES = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_DATASETS_CACHE",
    "TRANSFORMERS_CACHE",
    "HF_TOKEN_PATH",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
)
# passed through: locale, hash seed and evalplus's own settings; nothing that can hold a secret
PASSED = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED", "PYTHONUNBUFFERED")
PASSED_PREFIXES = ("LC_", "EVALPLUS_")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SRC = str(Path(__file__).resolve().parents[2])  # the directory holding the mixmerge package
HOW_TO = (
    "install bubblewrap (apt-get install bubblewrap) or enable unprivileged user namespaces "
    "(sysctl -w kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or set "
    "evaluate.sandbox: none to run model-written code without a boundary"
)


class SandboxUnavailable(ValueError):
    """No boundary of the requested kind works here (one line: why, and how to get one)."""


@dataclass(frozen=True)
class Layout:
    """What the boundary hides and what it binds back (absolute, symlink-free paths)."""

    hidden: tuple[str, ...]  # directories: an empty read-only tmpfs over each
    hidden_files: tuple[str, ...]  # files: /dev/null over each
    binds: tuple[str, ...]  # read-only bind-backs the interpreter needs from under hidden paths


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for path in sorted(set(paths)):
        if not any(_within(path, kept) for kept in out):
            out.append(path)
    return out


def _needed() -> list[str]:
    """What the worker's interpreter reads: its prefixes, site dirs, mixmerge, evalplus."""
    import importlib.util

    prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    needed = [*prefixes, SRC, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    needed += [p for p in sys.path if p and any(_within(p, prefix) for prefix in prefixes)]
    spec = importlib.util.find_spec("evalplus")  # an editable checkout lies outside site dirs
    if spec is not None and spec.origin:
        needed.append(str(Path(spec.origin).parents[1]))
    return needed


def layout(extra_hidden: Iterable[str | os.PathLike[str]] = ()) -> Layout:
    """The hidden paths for this process's environment plus `extra_hidden`, and the bind-backs."""
    import pwd

    candidates = [os.environ.get("HOME"), os.getcwd(), *ALWAYS_HIDDEN, *extra_hidden]
    candidates += [os.environ.get(name) for name in CACHE_VARIABLES]
    with contextlib.suppress(KeyError):  # a uid without a passwd entry (some containers)
        candidates.append(pwd.getpwuid(os.getuid()).pw_dir)
    secret = {os.path.realpath(c) for c in candidates if c}
    secret = {p for p in secret if p != "/" and os.path.lexists(p)}
    scratch = os.path.realpath("/tmp")
    outside = [p for p in secret if not _within(p, scratch)]  # /tmp is replaced anyway
    hidden = _outermost(p for p in outside if os.path.isdir(p))
    files = [p for p in outside if not os.path.isdir(p) and not any(_within(p, h) for h in hidden)]
    binds = _outermost(
        real
        for real in {os.path.realpath(p) for p in _needed() if p and os.path.exists(p)}
        if any(_within(real, h) for h in (*hidden, scratch))
        and not any(_within(s, real) for s in (*secret, scratch))  # never re-expose those
    )
    return Layout(tuple(hidden), tuple(sorted(files)), tuple(binds))


def environment(extra: Mapping[str, str] | None = None, *, sandboxed: bool) -> dict[str, str]:
    """The worker's whole environment: `PASSED` variables, one thread per BLAS, `extra`."""
    env = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith(PASSED_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    # one BLAS thread per process, as reliability_guard's OMP_NUM_THREADS=1 intends (it sets it
    # after numpy started its pool); keeps the task count far under RLIMIT_NPROC
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if sandboxed:
        env.update(HOME="/tmp", TMPDIR="/tmp")
    env.update(extra or {})
    return env


def _drop_privileges(root: bool) -> list[str]:
    """setpriv (util-linux): no capabilities, no_new_privs; as root also become nobody."""
    ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if root else []
    return ["setpriv", *ids, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _dirs_between(root: str, path: str) -> list[str]:
    """The directories strictly between `root` and `path` (to create them with mode 755)."""
    rel = Path(path).relative_to(root).parts[:-1]
    return [str(Path(root, *rel[: i + 1])) for i in range(len(rel))]


def _bwrap(lay: Layout, inner: list[str], root: bool) -> list[str]:
    if root:  # no user namespace: root's caps make the namespaces; setpriv then drops to nobody
        argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv = ["bwrap", "--unshare-all"]
    argv += ["--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    argv += ["--proc", "/proc", "--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp"]
    for path in lay.hidden:
        argv += ["--tmpfs", path]
    for path in lay.hidden_files:
        argv += ["--ro-bind", "/dev/null", path]
    made: set[str] = set()
    for path in lay.binds:
        top = next(h for h in (*lay.hidden, os.path.realpath("/tmp")) if _within(path, h))
        for parent in _dirs_between(top, path):  # bwrap would make them 0700: nobody can't pass
            if parent not in made:
                made.add(parent)
                argv += ["--perms", "0755", "--dir", parent]
        argv += ["--ro-bind", path, path]
    for path in lay.hidden:
        argv += ["--remount-ro", path]
    argv += ["--chdir", "/tmp", "--"]
    return argv + (_drop_privileges(root) if root else []) + inner


def _mount_targets() -> list[str]:
    """Every mount point of this process's tree (/proc/self/mountinfo, octal escapes decoded)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        raw = [line.split()[4] for line in handle]
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), t) for t in raw]


def _unshare(lay: Layout, inner: list[str], root: bool) -> list[str]:
    """unshare plus a mount script (util-linux mount, mountpoint, setpriv) doing bwrap's setup.

    What is bound back is first bound into a staging tmpfs (on /dev/shm, then moved into the new
    /tmp), since the tmpfs over /tmp and the hidden paths covers the sources."""
    q = shlex.quote
    scratch = os.path.realpath("/tmp")
    stage = f"{scratch}/.mixmerge-stage"
    skip = (*lay.hidden, scratch, "/proc", "/dev")  # replaced below, so not remounted
    lines = ["set -eu", "umask 022"]
    for target in dict.fromkeys(_mount_targets()):
        if not any(_within(target, s) for s in skip):  # a covered mount point is not reachable
            lines.append(
                f"if mountpoint -q {q(target)}; then mount -n -o remount,bind,ro {q(target)}; fi"
            )
    lines.append("mount -n -t tmpfs -o size=1m,mode=700 mixmerge-stage /dev/shm")
    for i, path in enumerate(lay.binds):
        lines += [f"mkdir /dev/shm/{i}", f"mount -n --bind {q(path)} /dev/shm/{i}"]
        lines.append(f"mount -n -o remount,bind,ro /dev/shm/{i}")
    for name in DEVICES:
        lines += [f"touch /dev/shm/{name}", f"mount -n --bind /dev/{name} /dev/shm/{name}"]
    lines.append(f"mount -n -t tmpfs -o size={SCRATCH_BYTES},mode=1777 mixmerge-scratch {scratch}")
    lines += [f"mkdir -m 700 {stage}", f"mount -n --move /dev/shm {stage}"]
    for path in lay.hidden:
        lines.append(f"mount -n -t tmpfs -o size=1m,mode=755 mixmerge-hidden {q(path)}")
    lines += [f"mount -n --bind /dev/null {q(path)}" for path in lay.hidden_files]
    lines.append("mount -n -t tmpfs -o size=1m,mode=755 mixmerge-dev /dev")
    for name in DEVICES:
        lines += [f"touch /dev/{name}", f"mount -n --move {stage}/{name} /dev/{name}"]
    lines += ["mkdir /dev/shm /dev/pts", "ln -s /proc/self/fd /dev/fd"]
    lines += [
        f"ln -s /proc/self/fd/{fd} /dev/{n}" for fd, n in enumerate(("stdin", "stdout", "stderr"))
    ]
    lines.append(f"mount -n -t tmpfs -o size={SHM_BYTES},mode=1777 shm /dev/shm")
    for i, path in enumerate(lay.binds):
        lines += [f"mkdir -p {q(path)}", f"mount -n --move {stage}/{i} {q(path)}"]
    lines += [f"umount -n {stage}", f"rmdir {stage}"]
    lines += [f"mount -n -o remount,bind,ro {q(path)}" for path in (*lay.hidden, "/dev")]
    lines += ["cd /tmp", "exec " + shlex.join(_drop_privileges(root) + inner)]
    argv = ["unshare"] + ([] if root else ["--user", "--map-root-user"])
    argv += ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
    argv += ["--mount-proc", "--propagation", "private", "--", "/bin/sh", "-c"]
    return [*argv, "\n".join(lines)]


def command(kind: str, inner: list[str], lay: Layout | None = None) -> list[str]:
    """argv running `inner` inside a boundary of `kind` (bwrap | unshare | none)."""
    if kind == "none":
        return list(inner)
    lay = lay if lay is not None else layout()
    root = os.geteuid() == 0
    if kind == "bwrap":
        return _bwrap(lay, inner, root)
    if kind == "unshare":
        return _unshare(lay, inner, root)
    raise ValueError(f"unknown sandbox {kind!r} (known: {', '.join(CHOICES)})")


@functools.cache
def probe(kind: str) -> str | None:
    """None where a `kind` boundary works here (this interpreter, unchanged, runs inside it),
    else why not, in a few words. Once per process."""
    tools = {"bwrap": ["bwrap", "setpriv"], "unshare": ["unshare", "mountpoint", "setpriv"]}[kind]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found"
    inner = [sys.executable, "-c", "import sys; sys.stdout.write(sys.version)"]
    try:
        proc = subprocess.run(
            command(kind, inner),
            env=environment(sandboxed=True),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{type(err).__name__}: {err}".splitlines()[0]
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        return (lines[-1] if lines else f"exit {proc.returncode}")[:200]
    if proc.stdout != sys.version:
        return f"a different interpreter runs inside ({proc.stdout.split()[0] or 'none'})"
    return None


def choose(requested: str | None) -> str:
    """The boundary to use for `evaluate.sandbox` = `requested` (default auto)."""
    requested = requested or "auto"
    if requested not in CHOICES:
        raise ValueError(f"evaluate.sandbox must be one of {', '.join(CHOICES)}, got {requested!r}")
    if requested == "none":
        return "none"
    kinds = KINDS if requested == "auto" else (requested,)
    reasons = {kind: probe(kind) for kind in kinds}
    for kind in kinds:
        if reasons[kind] is None:
            return kind
    why = "; ".join(f"{kind}: {reason}" for kind, reason in reasons.items())
    raise SandboxUnavailable(
        f"evaluate.sandbox: {requested}: no isolation boundary for model-written code ({why}): "
        + HOW_TO
    )


def sandbox_warning(config: Mapping[str, Any]) -> str | None:
    """The workflow-start warning for `evaluate.sandbox: none` with a code benchmark configured."""
    evaluate = config.get("evaluate") or {}
    if evaluate.get("sandbox") != "none":
        return None
    from mixmerge.catalog import catalog

    names = [n for n in evaluate.get("benchmarks") or {} if catalog()[n].runner == "evalplus"]
    if not names:
        return None
    return (
        f"evaluate.sandbox is none: {', '.join(names)} run model-written code with no isolation "
        "boundary (it can write files, read secrets and reach the network)"
    )
