"""``python -m bench.metrics`` — see :mod:`bench.metrics.cli`."""

import sys

from .cli import main

sys.exit(main())
