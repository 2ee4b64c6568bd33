"""The run folder: what `train` writes and `export`, `predict` and `evaluate` read.

    runs/NAME/
      spec.yaml            the resolved spec (overrides applied, file paths absolute)
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


UMASK = os.umask(0)   # the process's umask: read once (reading it means setting it) and put back
os.umask(UMASK)


def atomic_write(path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)     # mkstemp makes 0600; give the file the usual permissions
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


# ── history and checkpoints (written by `train`, one commit per completed epoch) ──────────

CHECKPOINT_GLOB = "epoch-*.npz"


def checkpoint_path(folder, epoch: int) -> Path:
    """checkpoints/epoch-0003.npz: the state after `epoch` completed epochs (1-based)."""
    return Path(folder) / CHECKPOINTS / f"epoch-{epoch:04d}.npz"


def checkpoint_epochs(folder) -> list[int]:
    """Completed epochs that have a checkpoint, newest first."""
    out = []
    for path in (Path(folder) / CHECKPOINTS).glob(CHECKPOINT_GLOB):
        try:
            out.append(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(out, reverse=True)


def history_text(rows: list[dict]) -> str:
    """history.csv: an `epoch` column (1-based) then the logged values, one row per epoch."""
    columns = ["epoch"]
    for row in rows:
        columns += [key for key in row if key not in columns]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else (repr(float(row[c])) if isinstance(row[c], float) else str(row[c]))
                              for c in columns))
    return "\n".join(lines) + "\n"


def read_history(path) -> list[dict]:
    """history.csv → a list of {column: number}; empty when the file is absent."""
    import csv
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)})
        return rows
