"""`python -m pipeline.plan`: the entry point (pipeline.plan.cli)."""

import sys

from pipeline.plan.cli import main

sys.exit(main())
