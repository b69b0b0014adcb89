"""Foreign start-up lines on stderr, hidden at their source (issue #24).

TensorFlow, oneDNN, absl and TFLite write start-up lines to the process's stderr (file
descriptor 2) from C++, where no Python filter reaches: "All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on ...", on CPUs without AVX-512
"oneDNN supports DT_INT32 only on platforms with AVX-512 ..." at a traced function's first
run, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." when a TFLite interpreter
starts. A notebook shows them as red blocks a newcomer reads as errors. `quiet_stderr` runs a
block with file descriptor 2 sent to a temporary file and passes on every line there that is
not one of those (`NOISE`); `quiet_first_call` does so for a function's first call. Nothing
else is hidden: a real error still reaches stderr.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from contextlib import contextmanager

NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
         "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate compiler flags",
         "Unable to register cu", "computation placer already registered", "TF-TRT Warning",
         "oneDNN supports DT_INT32 only on platforms with AVX-512",
         "Created TensorFlow Lite XNNPACK delegate for CPU")


def is_noise(line: str) -> bool:
    """Whether `line` is one of the known foreign start-up lines (`NOISE`)."""
    return any(n in line for n in NOISE)


@contextmanager
def quiet_stderr():
    """Run the block with file descriptor 2 sent to a temporary file; then pass on every line
    there that is not known start-up noise (`NOISE`)."""
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
                    if line.strip() and not is_noise(line)]
            for line in kept:
                print(line, file=sys.stderr)


def quiet_first_call(fn):
    """`fn`, whose first call runs under `quiet_stderr` (where TensorFlow optimises its graph
    and oneDNN picks its kernels, or TFLite applies its delegate)."""
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
