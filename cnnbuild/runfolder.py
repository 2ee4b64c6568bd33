"""The run folder: what `train` writes and `export`, `predict` and `evaluate` read.

    runs/NAME/
      spec.yaml            the resolved spec (overrides applied, file paths absolute)
      classes.json         class names, in label order
      history.csv          an `epoch` column, one row per completed epoch
      metrics.json         final metrics with Keras's names, images/second, wall time
      checkpoints/         what resume needs
      model.keras          the trained model (no augmentation inside)
      training_curves.png
      skipped.txt          the files and records left out (data.on_bad: skip), one per line with the reason
      tensorboard/         event files, with train: {tensorboard: true} or --tensorboard
      .lock                who owns the folder now (`owned`)
Files are written to a temporary sibling and renamed into place (`atomic_write`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

from .errors import UsageError

SPEC = "spec.yaml"
CLASSES = "classes.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
MODEL = "model.keras"
CURVES = "training_curves.png"
SKIPPED = "skipped.txt"         # every file or record training left out (on_bad: skip), and why
PROFILE = "data_profile.json"   # what the training images look like, for predict's warnings
TENSORBOARD = "tensorboard"
LOCK = ".lock"


UMASK = os.umask(0)   # the process's umask: read once (reading it means setting it) and put back
os.umask(UMASK)


class DiskFull(OSError):
    """No space left on the device while writing `filename` (the file it was to become; its
    previous content is intact)."""


def full_disk(error: BaseException) -> bool:
    """A full disk, as Python reports it (ENOSPC / EDQUOT) or as TensorFlow's and Keras's
    writers do (their own error types, with the system's message)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(error) or "Disk quota exceeded" in str(error)


def atomic_write(path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never half of it. A full
    disk raises DiskFull naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _atomic_write(path, data)
    except OSError as e:
        if full_disk(e):
            raise DiskFull(errno.ENOSPC, "No space left on device", str(path)) from None
        raise


def _atomic_write(path: Path, data) -> None:
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


# ── what a killed process leaves ─────────────────────────────────────────────────────────────

STRAY = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}$|^\..+-\d+\.keras$")   # atomic_write's mkstemp; save_model's


def remove_stray_temporaries(folder) -> list:
    """Remove the temporary siblings a killed writer left in `folder` (.history.csv.k2j4x9_a,
    .model-4121.keras, …: a write's file before its rename). Only while the folder is owned:
    no other process is writing there. Returns the names removed."""
    removed = []
    for entry in Path(folder).iterdir():
        if entry.name != LOCK and STRAY.match(entry.name) and (entry.is_file() or entry.is_symlink()):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


# ── reading a folder's own files only ────────────────────────────────────────────────────────

def within(folder, name) -> Path:
    """FOLDER/NAME, refused (UsageError naming it) when it, or a folder on the way, is a link
    that leads out of FOLDER or nowhere: a run folder or an export from elsewhere could
    otherwise make `evaluate` read (and its messages quote) any file of the machine."""
    folder = Path(folder)
    path = folder / name
    try:
        real, home = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):      # a loop of links (RuntimeError before Python 3.13)
        raise UsageError(f"{path}: a loop of symbolic links; nothing was read",
                         "replace the link with the file itself") from None
    if not real.is_relative_to(home):
        raise UsageError(f"{path}: a symbolic link to {real}, outside {folder}; cnnbuild reads only a run or export "
                         f"folder's own files, so nothing was read", "replace the link with a copy of the file")
    return path


def refuse_links_out(folder) -> None:
    """Refuse a folder (an export) holding any link that leads out of it, at any depth."""
    folder = Path(folder)
    for parent, folders, files in os.walk(folder):      # links to folders are listed, not entered
        for name in folders + files:
            entry = Path(parent) / name
            if entry.is_symlink():
                within(folder, entry.relative_to(folder))


# ── one owner per run folder ───────────────────────────────────────────────────────────────

class FolderInUse(UsageError):
    """Another process owns the run folder (exit status 2; nothing was touched)."""


@contextlib.contextmanager
def owned(folder, command: str):
    """Hold the run folder's lock for the block: an exclusive flock on FOLDER/.lock, which
    holds the owner's pid, host, start time and command line. A second process is refused
    with FolderInUse naming the owner. The kernel drops a flock when its process dies,
    however it dies (SIGKILL included), so a lock left by a killed run is simply free: no
    stale-lock guessing by pid. (flock, not fcntl's POSIX record locks: those belong to
    the process, so a second lock in the same process would succeed and closing any
    descriptor of the file would drop it.)"""
    import fcntl
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder; choose another --out")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(f"{folder} is in use by {holder(path)}; nothing was changed\n  hint: wait for it to "
                              f"finish, or choose another folder with --out (a killed process's lock is free "
                              f"at once)") from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "command": command, "argv": sys.argv}
        os.ftruncate(descriptor, 0)
        try:
            os.pwrite(descriptor, (json.dumps(owner) + "\n").encode("utf-8"), 0)
        except OSError as e:       # a full disk: the lock holds all the same (flock); the first real write
            if not full_disk(e):   # names the file and what was kept
                raise
        try:
            yield owner
        finally:
            os.ftruncate(descriptor, 0)        # the next reader never names a finished owner
            if created and [entry.name for entry in folder.iterdir()] == [LOCK]:
                path.unlink()                  # a run that failed before writing anything leaves no folder
                folder.rmdir()
    finally:
        os.close(descriptor)                   # closing the only descriptor releases the lock


def holder(path) -> str:
    """Who holds a lock file, in words: 'pid 41 on host, since …: cnnbuild train spec.yaml'."""
    try:
        owner = json.loads(Path(path).read_text(encoding="utf-8"))
        argv = [str(a) for a in owner.get("argv") or []]
        if argv and Path(argv[0]).name in ("cnnbuild", "cli.py", "__main__.py"):
            shown = " ".join(["cnnbuild", *argv[1:]])
        else:                                                # the Python API, from a script or a notebook
            shown = f"cnnbuild {owner['command']} (called from {argv[0] if argv else 'Python'})"
        return f"pid {owner['pid']} on {owner['host']}, running since {owner['since']}: {shown}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):   # the owner is still writing its name
        return f"another cnnbuild process (its lock {path} names no owner yet)"


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


class DamagedFile(Exception):
    """A run-folder file that cannot be read as what it should be; the message names it."""


def read_history(path) -> list[dict]:
    """history.csv → a list of {column: number}; empty when the file is absent. A damaged
    file raises DamagedFile naming it (train rewrites it from the newest checkpoint)."""
    import csv
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = []
            for line, row in enumerate(csv.DictReader(f), start=2):
                if None in row or "epoch" not in row:
                    raise ValueError(f"line {line} does not match the header")
                rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)})
            return rows
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as e:
        raise DamagedFile(f"{path}: cannot be read as a history ({e})") from None


def read_metrics(path):
    """metrics.json → a dict, None when absent; a damaged one raises DamagedFile naming it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = read_json(path)
    except (OSError, ValueError) as e:
        raise DamagedFile(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(value, dict):
        raise DamagedFile(f"{path}: holds {type(value).__name__}, not an object of metrics")
    return value
