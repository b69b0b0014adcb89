"""TensorFlow and Keras, imported once, without their start-up log.

Importing TensorFlow prints absl's and oneDNN's start-up lines to the process's stderr
("All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on ..."),
from C++, before its own log level applies: a one-line CLI error arrived as five, and a
notebook showed a red block a newcomer reads as an error. Every module that needs TensorFlow
imports it from here (`from amslib.core.tf import keras, tf`); the import runs with the
process's stderr (file descriptor 2) sent to a temporary file, and any line there that is not
that known start-up noise is passed on (amslib/core/quiet.py). oneDNN itself stays on (turning it off would change
the numbers). On some CPUs oneDNN logs one more line, at the first training step ("oneDNN
supports DT_INT32 only on platforms with AVX-512 ..."): `quiet_first_call` runs a traced
function's first call under the same filter, and `quiet_function` makes a traced function
so (every `tf.function` of amslib: the trainer's, the student's inference and weight
assignment, the edge's training).
"""
from __future__ import annotations

import os
import sys

from amslib.core.quiet import quiet_first_call, quiet_stderr

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING, once it logs


def _import_quietly():
    if "tensorflow" in sys.modules:  # already imported (by the user, or a notebook): nothing to hide
        import keras as keras_module  # noqa: I001 - deferred: imported once, here
        import tensorflow as tf_module  # deferred: imported once, here
        return tf_module, keras_module
    with quiet_stderr():
        import keras as keras_module  # deferred: with stderr captured
        import tensorflow as tf_module  # deferred: with stderr captured
    return tf_module, keras_module


tf, keras = _import_quietly()


def quiet_function(fn, **options):
    """`tf.function(fn, **options)` whose first call (the graph's optimisation, where oneDNN
    logs) runs under `quiet_stderr`: every traced function of amslib is made here."""
    return quiet_first_call(tf.function(fn, **options))


__all__ = ["keras", "quiet_first_call", "quiet_function", "quiet_stderr", "tf"]
