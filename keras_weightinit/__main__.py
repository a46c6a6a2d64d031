"""`python -m keras_weightinit compare ...`."""

import sys

from keras_weightinit.cli import main

sys.exit(main())
