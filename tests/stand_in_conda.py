"""A stand-in for `conda`, for tests of `snakemake --sdm conda` on machines without conda or
access to conda-forge (this one). It answers the commands Snakemake sends (info, --version,
config, env create, clean) and provides the `activate` script Snakemake sources before a job.

`conda env create --file F --prefix P` "solves" F against the Python environment this file runs
in: it fails, like a real solve, if F asks for a package or version that environment does not
have; otherwise it makes P a venv that sees those installed packages. Everything Snakemake does
around it is real: reading envs/*.yaml, hashing them, the post-deploy script, activation.

    install(root) -> root/bin/{conda,activate}; put root/bin on PATH. Activations are logged
    to root/activations.log.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

VERSION = "24.11.3"

ACTIVATE = """\
# sourced by Snakemake's job shell: `source <root>/bin/activate <env prefix>`; each activation
# is logged (one env prefix per line) so tests can tell which env each job ran in
echo "$1" >> {log}
export CONDA_PREFIX="$1"
export PATH="$1/bin:$PATH"
"""


def install(root: Path) -> Path:
    """Write the stand-in under `root`; returns root/bin (to prepend to PATH)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    conda = bin_dir / "conda"
    conda.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from stand_in_conda import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    conda.chmod(conda.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "activate").write_text(ACTIVATE.format(log=root / "activations.log"))
    return bin_dir


def _root() -> Path:
    """The stand-in's root: <root>/bin/conda is the script that runs."""
    return Path(sys.argv[0]).resolve().parents[1]


def solve(env_file: Path) -> list[str]:
    """Unmet requirements of the env file, checked against this Python environment."""
    import importlib.metadata

    import yaml
    from packaging.requirements import Requirement

    spec = yaml.safe_load(env_file.read_text())
    problems = []
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                req = Requirement(line)
                try:
                    have = importlib.metadata.version(req.name)
                except importlib.metadata.PackageNotFoundError:
                    problems.append(f"{req}: not installed")
                    continue
                if not req.specifier.contains(have, prereleases=True):
                    problems.append(f"{req}: found {have}")
        elif dep.startswith("python="):
            want = dep.split("=", 1)[1]
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if have != want:
                problems.append(f"{dep}: found python {have}")
    return problems


def _create(args: list[str]) -> int:
    env_file = Path(args[args.index("--file") + 1])
    prefix = Path(args[args.index("--prefix") + 1])
    problems = solve(env_file)
    if problems:
        print("stand-in conda: cannot solve " + str(env_file) + ":\n  " + "\n  ".join(problems))
        return 1
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"])
    (site / "_stand_in_conda.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return 0


def main(argv: list[str]) -> int:
    root = _root()
    if argv == ["--version"]:
        print(f"conda {VERSION}")
    elif argv[:2] == ["info", "--json"]:
        print(json.dumps({"conda_prefix": str(root), "root_prefix": str(root),
                          "platform": "linux-64", "conda_version": VERSION}))  # fmt: skip
    elif argv[:1] == ["config"]:
        print(json.dumps({"get": {"channel_priority": "strict"}, "success": True}))
    elif argv[:2] == ["env", "create"]:
        return _create(argv[2:])
    elif argv[:1] == ["clean"]:
        pass
    else:
        print(f"stand-in conda: unsupported command: conda {' '.join(argv)}", file=sys.stderr)
        return 2
    return 0
