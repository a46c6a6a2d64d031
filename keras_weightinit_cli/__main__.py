"""`python -m keras_weightinit_cli compare ...`."""

import sys

from keras_weightinit_cli import main

if __name__ == "__main__":
    sys.exit(main())
