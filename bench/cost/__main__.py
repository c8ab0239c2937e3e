"""``python -m bench.cost`` (or ``python -m bench``) — see :mod:`bench.cost.run`."""

import sys

from .run import main

sys.exit(main())
