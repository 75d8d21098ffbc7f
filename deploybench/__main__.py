"""``python -m deploybench``: the ``deploybench`` command, for environments without the script."""

import sys

from deploybench.cli import main

if __name__ == "__main__":
    sys.exit(main())
