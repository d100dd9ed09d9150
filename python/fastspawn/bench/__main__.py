"""``python -m fastspawn.bench``: see :mod:`fastspawn.bench`."""

import sys

from .runner import main

sys.exit(main())
