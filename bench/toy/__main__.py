"""``python -m bench.toy`` — see :mod:`bench.toy.compare`."""

import sys

from .compare import main

sys.exit(main())
