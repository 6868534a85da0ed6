"""`python -m align` is the `align` command."""

import sys

from align.cli import main

sys.exit(main())
