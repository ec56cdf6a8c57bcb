"""`python -m bench [--quick] [--only PHASE ...]`: see bench/runner.py and README.md."""

import sys

from .runner import main

sys.exit(main())
