"""`python -m haoperator`: the same command line as the `haoperator` console script."""

import sys

from haoperator.cli import main

sys.exit(main())
