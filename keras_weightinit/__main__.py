"""`python -m keras_weightinit compare ...`."""

import sys

from keras_weightinit.cli import main

if __name__ == "__main__":
    sys.exit(main())
