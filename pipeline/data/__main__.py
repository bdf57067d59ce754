"""`python -m pipeline.data`: the entry point (pipeline.data.prepare)."""

import sys

from pipeline.data.prepare import main

sys.exit(main())
