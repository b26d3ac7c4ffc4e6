"""``python -m keras_ssm.memory``: see :mod:`keras_ssm.memory.cli`."""

import sys

from keras_ssm.memory.cli import main

sys.exit(main())
