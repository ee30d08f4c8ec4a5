"""Helpers for the LiteRT optimization workbook.

Importing ``helpers`` (or any of its modules) sets up the environment that tfmot needs *before*
TensorFlow is first imported:

- ``TF_USE_LEGACY_KERAS=1`` so ``tf.keras`` is Keras 2 (``tf_keras``); tfmot 0.8.1 does not support
  Keras 3.
- TensorFlow's C++ log level and oneDNN switch (both read when TensorFlow loads), so committed
  notebook outputs carry results, not log noise, and runs are bit-identical.

That is all it does: no warning filters, no plot styles (those are explicit calls, e.g.
:func:`helpers.keras_setup.quiet_tensorflow_warnings`, which :func:`helpers.keras_setup.tf` makes).
Nothing here imports TensorFlow; modules that need it import it themselves, so light tools
(``python -m helpers.select``) start fast.
"""

from __future__ import annotations

import os
import sys

_LEGACY_KERAS = "TF_USE_LEGACY_KERAS"

if "tensorflow" in sys.modules and os.environ.get(_LEGACY_KERAS) != "1":
    # Too late to switch: tf.keras is already bound to Keras 3 in this process.
    raise ImportError(
        "TensorFlow was imported before `helpers` without TF_USE_LEGACY_KERAS=1, so tf.keras is "
        "Keras 3 and tfmot will not work. Restart the kernel and import `helpers` first "
        "(or set TF_USE_LEGACY_KERAS=1 in the environment)."
    )
os.environ[_LEGACY_KERAS] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ INFO/WARNING/ERROR noise (e.g. no-GPU cuInit)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-identical results run to run

__version__ = "0.1.0"
