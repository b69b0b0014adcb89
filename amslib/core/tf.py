"""TensorFlow and Keras, imported once, without their start-up log.

Importing TensorFlow prints absl's and oneDNN's start-up lines to the process's stderr
("All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on ..."),
from C++, before its own log level applies: a one-line CLI error arrived as five, and a
notebook showed a red block a newcomer reads as an error. Every module that needs TensorFlow
imports it from here (`from amslib.core.tf import keras, tf`); the import runs with the
process's stderr (file descriptor 2) sent to a temporary file, and any line there that is not
that known start-up noise is passed on. oneDNN itself stays on (turning it off would change
the numbers). On some CPUs oneDNN logs one more line, at the first training step ("oneDNN
supports DT_INT32 only on platforms with AVX-512 ..."): `quiet_first_call` runs a traced
function's first call under the same filter.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING, once it logs

_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
          "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate compiler flags",
          "Unable to register cu", "computation placer already registered", "TF-TRT Warning",
          "oneDNN supports DT_INT32 only on platforms with AVX-512")


@contextmanager
def quiet_stderr():
    """Run the block with file descriptor 2 sent to a temporary file; then pass on every line
    there that is not TensorFlow's known noise (`_NOISE`)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines()
                    if line.strip() and not any(n in line for n in _NOISE)]
            for line in kept:
                print(line, file=sys.stderr)


def quiet_first_call(fn):
    """`fn`, whose first call runs under `quiet_stderr` (where TensorFlow optimises its graph)."""
    called = False

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal called
        if called:
            return fn(*args, **kwargs)
        called = True
        with quiet_stderr():
            return fn(*args, **kwargs)
    return wrapper


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
