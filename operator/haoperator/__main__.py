"""`python -m haoperator`: the same command line as the `haoperator` console script."""

import sys

from haoperator.cli import main

if __name__ == "__main__":  # importing it (a walk over the package) must not run the command
    sys.exit(main())
