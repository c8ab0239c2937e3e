"""``python -m bench.latent`` — see :mod:`bench.latent.study`."""

import sys

from .study import main

sys.exit(main())
