"""``python -m vlm_adapters``: the CLI, as ``torchrun -m vlm_adapters extract ...`` starts it."""

import sys

from .cli import main

sys.exit(main())
