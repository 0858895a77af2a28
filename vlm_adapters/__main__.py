"""``python -m vlm_adapters``: the ``vlm-adapters`` command (``torchrun -m vlm_adapters extract ...`` too)."""

import sys

from .cli import main

sys.exit(main())
