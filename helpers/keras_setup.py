"""Keras 2 (tf_keras) for tfmot: one place that imports TensorFlow the right way."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from types import ModuleType
from typing import Any, Iterator

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)


class Keras3ModelError(TypeError):
    """A Keras 3 model reached code that needs a Keras 2 (tf_keras) model."""


_STDERR_LOCK = threading.Lock()
_stderr_depth = 0  # how many quiet_native_stderr blocks are open, in any thread
_stderr_saved: tuple[int, int] | None = None  # (fd 2, a dup of the real stderr) while silenced


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send native (C++) writes to stderr to /dev/null for the duration of the block.

    TensorFlow and LiteRT print start-up banners ("Could not find cuda drivers", "Created TensorFlow
    Lite XNNPACK delegate") straight to file descriptor 2, which Jupyter copies into cell outputs.
    Python exceptions still propagate normally.

    Thread-safe: file descriptor 2 belongs to the whole process, so the first block to open (in any
    thread) swaps it for /dev/null and the last one to close restores it (a lock and a reference
    count). While any thread is inside a block, native stderr of every thread is silenced.
    """
    global _stderr_depth, _stderr_saved
    with _STDERR_LOCK:
        if _stderr_depth == 0:
            try:
                fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
                saved = os.dup(fd)
            except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to silence
                _stderr_saved = None
            else:
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, fd)
                finally:
                    os.close(devnull)
                _stderr_saved = (fd, saved)
        _stderr_depth += 1
    try:
        yield
    finally:
        with _STDERR_LOCK:
            _stderr_depth -= 1
            if _stderr_depth == 0 and _stderr_saved is not None:
                fd, saved = _stderr_saved
                _stderr_saved = None
                try:
                    os.dup2(saved, fd)
                finally:
                    os.close(saved)


def quiet_tensorflow_warnings() -> None:
    """Hide known, harmless Python warnings of TensorFlow and its converter (called by :func:`tf`):
    deprecation notices from ``tensorflow``/``tf_keras`` modules and the converter's note about
    missing statistics for quantized inputs. Idempotent."""
    warnings.filterwarnings("ignore", message=r"Statistics for quantized inputs were expected")
    warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tensorflow.*|tf_keras.*")


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, imported with legacy Keras, quiet logs and
    :func:`quiet_tensorflow_warnings`."""
    quiet_tensorflow_warnings()
    if "tensorflow" not in sys.modules:
        with quiet_native_stderr():
            import tensorflow  # noqa: F401
    import tensorflow as _tf

    _tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    return _tf


def keras() -> ModuleType:
    """Return ``tf_keras`` (Keras 2), the Keras that tfmot supports."""
    tf()
    import tf_keras

    return tf_keras


def ensure_keras2_model(model: Any) -> Any:
    """Return ``model`` unchanged if it is a tf_keras model, else raise one clear error.

    tfmot wraps layers of Keras 2 only; a Keras 3 model fails deep inside tfmot with an
    unreadable message. This check says what is wrong and what to do.
    """
    k = keras()
    if isinstance(model, k.Model):
        return model
    module = type(model).__module__
    if module.startswith("keras"):
        raise Keras3ModelError(
            f"{type(model).__name__} is a Keras 3 model ({module}); tfmot needs a Keras 2 model. "
            "Build it with `tf_keras` (helpers.keras_setup.keras()) or import `helpers` before "
            "TensorFlow so that tf.keras is Keras 2."
        )
    raise Keras3ModelError(f"expected a tf_keras.Model, got {type(model).__name__}.")
