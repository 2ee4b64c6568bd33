"""The run folder: what `train` writes and `export`, `predict` and `evaluate` read.

    runs/NAME/
      spec.yaml            the resolved spec (overrides applied)
      classes.json         class names, in label order
      history.csv          an `epoch` column, one row per completed epoch
      metrics.json         final metrics with Keras's names, images/second, wall time
      checkpoints/         what resume needs
      model.keras          the trained model (no augmentation inside)
      training_curves.png
Files are written to a temporary sibling and renamed into place (`atomic_write`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SPEC = "spec.yaml"
CLASSES = "classes.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
MODEL = "model.keras"
CURVES = "training_curves.png"


def atomic_write(path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, value) -> None:
    atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))
