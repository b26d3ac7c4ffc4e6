"""The LRA model zoo: configs, data, models and training built on keras_ssm.

Importing it before Keras (as every zoo and tuning script does) keeps TensorFlow's C++ log lines (oneDNN,
CPU features, absl) off the terminal on every backend: TensorFlow is imported by Keras itself on the
tensorflow backend and by the tf.data input pipeline on the others. Errors are still printed; set
``TF_CPP_MIN_LOG_LEVEL=0`` to see everything.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
