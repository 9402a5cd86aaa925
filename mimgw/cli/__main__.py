"""``python -m mimgw.cli``."""

import sys

from mimgw.cli import main

sys.exit(main())
