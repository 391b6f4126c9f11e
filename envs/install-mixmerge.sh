#!/usr/bin/env bash
# Post-deploy script of every env in envs/ (the <env>.post-deploy.sh links point here): Snakemake
# runs it inside a conda env it has just created. It installs mixmerge itself from the workflow's
# checkout, editable and without dependencies: the env file already pins those, and the jobs then
# run the code of the checkout they were launched from.
# MIXMERGE_SRC is set by the workflow (workflow/rules/common.smk) to the checkout's root.
set -euo pipefail
if [ -z "${MIXMERGE_SRC:-}" ] || [ ! -f "$MIXMERGE_SRC/pyproject.toml" ]; then
  echo "install-mixmerge.sh: MIXMERGE_SRC must name the mixmerge checkout (got '${MIXMERGE_SRC:-}')" >&2
  exit 1
fi
python -m pip install --quiet --no-deps --editable "$MIXMERGE_SRC"
python -c "import mixmerge.cli" # fails here, not in the first job, if the install did not take
