"""`python -m keras_weightinit compare ...`: the command line, after Keras starts.

`keras-weightinit` (`python -m keras_weightinit_cli`) answers `--help` and a
bad argument before Keras starts; this one imports the package first.
"""

import sys

from keras_weightinit_cli import main

if __name__ == "__main__":
    sys.exit(main())
