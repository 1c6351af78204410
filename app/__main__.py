"""`python -m app` is the `tact` command."""

import sys

from app.cli import main

sys.exit(main())
