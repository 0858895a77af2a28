"""``python -m vlm_adapters``: the ``vlm-adapters`` command."""

import sys

from .cli import main

sys.exit(main())
