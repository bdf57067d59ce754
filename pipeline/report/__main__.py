"""`python -m pipeline.report`: the entry point (pipeline.report.build)."""

import sys

from pipeline.report.build import main

sys.exit(main())
