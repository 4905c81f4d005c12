"""`python -m tslic.cli` is the `tslic` command."""

import sys

from .main import main

sys.exit(main())
