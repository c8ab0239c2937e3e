"""``python -m ems.metrics`` — see :mod:`ems.metrics.cli`."""

import sys

from .cli import main

sys.exit(main())
