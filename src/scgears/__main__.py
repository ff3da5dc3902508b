"""``python -m scgears``: the same command line as the ``scgears`` script."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
