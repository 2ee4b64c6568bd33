"""TensorFlow started with its start-up log hidden: called by every stage that needs
TensorFlow, after every refusal that does not (a busy run folder, another spec's run,
missing data are answered before the 5-15 s import)."""
from __future__ import annotations

import os
import re
import sys

SHOW_LOG = False     # `--verbose`: TensorFlow's own start-up log is shown (cli.py sets it)


# What TensorFlow 2.21 prints on every start, before cnnbuild says a word: absl's notice, the
# oneDNN and CPU-instruction notes, and on a machine without a GPU the CUDA probes. Anything
# else it prints while starting still comes through.
TENSORFLOW_NOISE = re.compile("|".join((
    r"All log messages before absl::InitializeLog\(\) is called", r"oneDNN custom operations are on",
    r"Could not find cuda drivers", r"failed call to cuInit", r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered", r"TF-TRT Warning", r"This TensorFlow binary is optimized",
    r"rebuild TensorFlow with the appropriate compiler flags", r"Attempting to register factory for plugin",
    r"cuda_executor|cuda_platform|cudart_stub|cuda_dnn|cuda_fft|cuda_blas")))


def start_tensorflow():
    """Start TensorFlow with its start-up log hidden. Its C++ side writes to file descriptor 2
    before any setting is read (TF_CPP_MIN_LOG_LEVEL does not reach absl's early messages), so
    the import and the first device query (which probes CUDA) run with descriptor 2 pointed at
    a temporary file; afterwards every line that is not known noise is passed on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")    # what TensorFlow does read: its later C++ log
    if SHOW_LOG or os.environ.get("CNNBUILD_DEBUG") or "tensorflow" in sys.modules:
        return
    import tempfile
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf
            tf.config.list_physical_devices("GPU")
            import keras  # noqa: F401  (its first import logs too)
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip() and (failed or not TENSORFLOW_NOISE.search(line)):
                    print(line, file=sys.stderr)
