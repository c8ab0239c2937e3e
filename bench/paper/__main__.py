"""``python -m bench.paper`` — see :mod:`bench.paper.evaluate`."""

import sys

from .evaluate import main

sys.exit(main())
