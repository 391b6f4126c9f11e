"""`python -m mixmerge.report {report,diagnose} ...`: the report verbs without the main CLI."""

import sys

from mixmerge.report.cli import main

sys.exit(main())
