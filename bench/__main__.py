"""``python -m bench``: the cost bench, :mod:`bench.cost` (the same as ``python -m bench.cost``)."""

import sys

from .cost.run import main

sys.exit(main())
