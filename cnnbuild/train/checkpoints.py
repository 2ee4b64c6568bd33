"""The run folder's training state: one checkpoint file per committed epoch, history.csv,
and the spec the run belongs to.

After every epoch the run *commits* it (`Commit`): one atomic checkpoint file holding the
weights, the optimizer state and the history so far, then history.csv. A SIGKILL at any
moment therefore loses no completed epoch and trains none twice: on resume the newest
usable checkpoint is the truth and history.csv is rewritten from it. Only the chief writes.

Each checkpoint carries a sha256 of its arrays in its meta. One that cannot be read, or
whose arrays do not match their checksum or the model's shapes, is skipped with a warning
naming it, and the next older one is used; the run stops only when none is usable. A NaN
epoch is refused before anything is written (`Commit.fail`), so no checkpoint holds one.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import runfolder
from ..errors import Failure, UsageError
from .replicas import local_copies, replica_state_sync

KEEP_CHECKPOINTS = 2      # the newest two, plus the best epoch's when restore_best needs it


class TrainingError(Failure):
    """Training stopped for a reason the user must act on (a NaN loss, a bad checkpoint)."""


class DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be used; the message says why (without the path)."""


def arrays_digest(values) -> str:
    """sha256 over each array's dtype, shape and bytes, in order: what a checkpoint's meta
    records, so a changed byte or a swapped array is noticed on reading."""
    digest = hashlib.sha256()
    for value in values:
        value = np.ascontiguousarray(value)
        digest.update(f"{value.dtype.str}{value.shape};".encode("ascii"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def checkpoint_bytes(meta, model_values, optimizer_values) -> bytes:
    """One .npz: `meta` (JSON: epoch, history, the arrays' sha256, …) and every model and
    optimizer value in order."""
    meta = {**meta, "sha256": arrays_digest(list(model_values) + list(optimizer_values)),
            "counts": [len(model_values), len(optimizer_values)]}
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays.update({f"model_{i:05d}": v for i, v in enumerate(model_values)})
    arrays.update({f"optimizer_{i:05d}": v for i, v in enumerate(optimizer_values)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# what reading a damaged .npz raises: a cut or flipped zip (BadZipFile, zlib.error, EOFError
# for an empty file), garbage (ValueError: "pickled data"), a missing or odd member (KeyError)
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)


def read_checkpoint(path):
    """(meta, model values, optimizer values) of a checkpoint file whose arrays match the
    checksum in its meta; raises DamagedCheckpoint saying what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            model = [archive[k] for k in sorted(k for k in archive.files if k.startswith("model_"))]
            optimizer = [archive[k] for k in sorted(k for k in archive.files if k.startswith("optimizer_"))]
    except UNREADABLE as e:
        raise DamagedCheckpoint(f"cannot be read ({type(e).__name__}: {str(e) or 'no data'})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("history"), list) or not isinstance(meta.get("epoch"), int):
        raise DamagedCheckpoint("its meta is not a cnnbuild checkpoint's (no epoch and history)")
    if "sha256" in meta:        # checkpoints of cnnbuild before checksums have none; the zip's CRC guards those
        if meta.get("counts") != [len(model), len(optimizer)]:
            raise DamagedCheckpoint(f"holds {len(model)} model and {len(optimizer)} optimizer arrays, its meta "
                                    f"says {meta.get('counts')}")
        if arrays_digest(model + optimizer) != meta["sha256"]:
            raise DamagedCheckpoint("its arrays do not match the sha256 recorded when it was written")
    return meta, model, optimizer


def newest_usable(folder, shapes, say):
    """(epoch, meta, model values, optimizer values) of the newest checkpoint that can be read,
    matches its checksum, fits `shapes` (the model's and then the optimizer's variables) and
    holds only finite values; None when the folder has no checkpoint. Each one passed over
    is named in a warning; when none is usable the run stops, saying why each was refused."""
    epochs = runfolder.checkpoint_epochs(folder)      # newest first
    refused = []
    for epoch in epochs:
        path = runfolder.checkpoint_path(folder, epoch)
        try:
            meta, model_values, optimizer_values = read_checkpoint(path)
            if meta["epoch"] != epoch:
                raise DamagedCheckpoint(f"holds epoch {meta['epoch']}, not {epoch}")
            mismatch = _shape_mismatch([tuple(v.shape) for v in model_values + optimizer_values], shapes,
                                       len(model_values))
            if mismatch:
                raise DamagedCheckpoint(f"does not fit this model: {mismatch}")
            if not all(np.all(np.isfinite(v)) for v in model_values + optimizer_values):
                raise DamagedCheckpoint("holds NaN or infinite values")
        except DamagedCheckpoint as e:
            refused.append(f"{path.name} {e}")
            say(f"warning: {path} {e}; trying an older checkpoint" if epoch != epochs[-1]
                else f"warning: {path} {e}")
            continue
        return epoch, meta, model_values, optimizer_values
    if epochs:
        raise TrainingError(f"{folder}: no usable checkpoint: " + "; ".join(refused) + "\n"
                            f"  hint: move {folder / runfolder.CHECKPOINTS} aside (or delete it) and rerun to start "
                            f"over, or train into a new folder with --out")
    return None


def _shape_mismatch(stored, needed, model_count) -> str:
    """'' when the stored arrays' shapes are the variables'; else the first difference, in words.

    >>> _shape_mismatch([(3, 3, 1, 8), (8,)], [(3, 3, 1, 8), (8,)], 2)
    ''
    >>> _shape_mismatch([(3, 3, 1, 4), (8,)], [(3, 3, 1, 8), (8,)], 2)
    'model array 0 has shape (3, 3, 1, 4), the variable needs (3, 3, 1, 8)'
    >>> _shape_mismatch([(8,)], [(3, 3, 1, 8), (8,)], 1)
    'it holds 1 arrays where the model and optimizer have 2 variables'
    """
    if len(stored) != len(needed):
        return f"it holds {len(stored)} arrays where the model and optimizer have {len(needed)} variables"
    for i, (have, need) in enumerate(zip(stored, needed)):
        if have != need:
            part, index = ("model", i) if i < model_count else ("optimizer", i - model_count)
            return f"{part} array {index} has shape {have}, the variable needs {need}"
    return ""


def prune(folder, newest, best=None):
    """Delete the checkpoints older than `newest` but the newest KEEP_CHECKPOINTS and `best`."""
    keep = set(sorted(runfolder.checkpoint_epochs(folder), reverse=True)[:KEEP_CHECKPOINTS])
    if best:
        keep.add(best)
    for epoch in runfolder.checkpoint_epochs(folder):
        if epoch not in keep and epoch < newest:
            runfolder.checkpoint_path(folder, epoch).unlink(missing_ok=True)


def spec_difference(before, now) -> str:
    """'' when a run folder's spec.yaml and the spec now describe the same run. The model,
    input, data and augmentation must be equal; of `train:` only the seed must (it chose
    the validation split) — epochs, learning rate and the rest may change on resume."""
    def trimmed(spec):
        if not isinstance(spec, dict):
            return spec
        spec = json.loads(json.dumps(spec))
        train = spec.pop("train", None)
        spec["train.seed"] = train.get("seed", 0) if isinstance(train, dict) else 0
        return spec
    a, b = trimmed(before), trimmed(now)
    if a == b:
        return ""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return "its spec.yaml cannot be read"
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return f"'{keys[0]}' differs" if keys else "the spec differs"


def refuse_other_run(folder, resolved):
    """Refuse a folder holding another spec's run (one with checkpoints): no TensorFlow needed."""
    import yaml
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder; choose another --out")
    spec_file = folder / runfolder.SPEC
    started = bool(runfolder.checkpoint_epochs(folder))
    if started and spec_file.is_file():
        try:
            before = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            before = None
        difference = spec_difference(before, resolved)
        if difference:
            raise UsageError(f"{folder} holds a run of a different spec ({difference})\n  hint: choose a new folder "
                             f"with --out, or delete {folder} to start over (on resume only train: values other "
                             f"than seed may change)")
    elif started:
        raise UsageError(f"{folder} has checkpoints but no {runfolder.SPEC}; choose another --out")


def prepare_folder(folder, resolved, classes):
    """Refuse a folder holding another spec's run; write spec.yaml (the resolved spec) and classes.json."""
    import yaml
    refuse_other_run(folder, resolved)
    spec_file = folder / runfolder.SPEC
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (folder / runfolder.CHECKPOINTS).glob(".epoch-*"):   # a write cut short by a kill
        stale.unlink(missing_ok=True)
    runfolder.remove_stray_temporaries(folder)
    runfolder.atomic_write(spec_file, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    runfolder.write_json(folder / runfolder.CLASSES, list(classes))


@dataclass
class History:
    """The committed epochs (one row each, as history.csv holds them), why training stopped,
    and what early stopping (`train.early_stopping`, or None) makes of them."""

    stopping: object
    rows: list = field(default_factory=list)
    stopped: Optional[str] = None

    def best_epoch(self):
        """The epoch with the best monitored value (improving by min_delta), or None."""
        if self.stopping is None:
            return None
        best_epoch, best = None, None
        for row in self.rows:
            value = row.get(self.stopping.monitor)
            if value is None or not math.isfinite(value):
                continue
            better = best is None or (value > best + self.stopping.min_delta if self.stopping.maximize
                                      else value < best - self.stopping.min_delta)
            if better:
                best_epoch, best = row["epoch"], value
        return best_epoch

    def restored_epoch(self):
        """The epoch whose weights the run keeps: the best one with restore_best, else None."""
        return self.best_epoch() if self.stopping and self.stopping.restore_best else None

    def should_stop(self) -> bool:
        """`patience` epochs have passed without improvement."""
        if self.stopping is None or not self.rows:
            return False
        best = self.best_epoch()
        return best is not None and self.rows[-1]["epoch"] - best >= self.stopping.patience

    def seconds(self) -> float:
        return float(sum(row["seconds"] for row in self.rows))


class Commit:
    """Makes an epoch durable; called by the loop after each one, returns True to stop
    (early stopping). Rows' `seconds` run from the previous commit (or `begin`), so they add
    up to the whole run's time; images/second counts the training part of the epoch only.
    Each checkpoint holds every variable of the family's `models`, then of its `optimizers`,
    and records the run's wall time so far (`wall_before`, the earlier sessions', plus this
    session's since `started`) and the schedule's cosine cycle (when there is a schedule).

    From the family (train/session.py's Training): `line(row, corrupt)` the epoch's log line,
    `after(rows)` what to say after an epoch (warnings), `hint` how to recover from a NaN."""

    def __init__(self, tf, folder, plan, section, models, optimizers, schedule, history: History, images_per_epoch,
                 out, tty, started, wall_before=0.0, events=None, corrupt=None, line=None, after=None, hint=""):
        self.folder, self.plan, self.section, self.history = folder, plan, section, history
        self.models, self.optimizers, self.schedule = list(models), list(optimizers), schedule
        self.images_per_epoch, self.out, self.tty = images_per_epoch, out, tty
        self.started, self.wall_before, self.events = started, wall_before, events
        self.corrupt = corrupt    # epoch → training files dropped as corrupt in it (Pipeline.corrupt_in_epoch), or None
        self.line, self.after, self.hint = line or self.epoch_line, after, hint
        syncs = [replica_state_sync(tf, plan.strategy, model) for model in self.models]
        self.sync_replicas = lambda: [sync() for sync in syncs]
        self.mark = time.perf_counter()

    def wall_time(self) -> float:
        """The run's wall time up to now, summed over the sessions that trained it."""
        return round(self.wall_before + time.time() - self.started, 3)

    def begin(self):
        """The first epoch's clock starts now."""
        self.mark = time.perf_counter()

    def __call__(self, epoch, logs, trained_seconds) -> bool:
        """Epoch `epoch` (1-based) with the loop's `logs`; `trained_seconds` exclude validation."""
        seconds = time.perf_counter() - self.mark
        self.sync_replicas()
        bad = [k for k, v in logs.items() if k.endswith("loss") and not math.isfinite(float(v))]
        if bad:
            self.fail(epoch, f"the {bad[0].replace('_', ' ')} became {logs[bad[0]]}")
        model_values = [np.asarray(local_copies(v)[0]) for model in self.models for v in model.variables]
        if not all(np.all(np.isfinite(v)) for v in model_values):
            self.fail(epoch, "the weights became NaN or infinite")
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items() if k != "learning_rate"}}
        if self.schedule is not None:
            row["learning_rate"] = float(self.schedule(max(int(self.optimizers[0].iterations.numpy()) - 1, 0)))
        row["seconds"] = round(seconds, 4)
        row["images_per_second"] = round(self.images_per_epoch / max(trained_seconds, 1e-9), 2)
        history = self.history
        history.rows.append(row)
        stop = history.should_stop()
        if stop:
            history.stopped = "early_stopping"
        if self.plan.chief:
            optimizer_values = [np.asarray(local_copies(v)[0]) for optimizer in self.optimizers
                                for v in optimizer.variables]
            meta = {"epoch": epoch, "history": history.rows, "stopped": history.stopped,
                    "best_epoch": history.best_epoch(), "wall_time_seconds": self.wall_time()}
            if self.schedule is not None:
                meta["schedule_cycle"] = [self.schedule.first_epoch, self.schedule.last_epoch]
            runfolder.atomic_write(runfolder.checkpoint_path(self.folder, epoch),
                                   checkpoint_bytes(meta, model_values, optimizer_values))
            runfolder.atomic_write(self.folder / runfolder.HISTORY, runfolder.history_text(history.rows))
            prune(self.folder, epoch, best=history.restored_epoch())
            if self.events is not None:
                self.events.epoch(row)
            skipped = self.corrupt(epoch) if self.corrupt is not None else None
            if not self.tty:
                print(self.line(row, skipped), file=self.out, flush=True)
            elif skipped:        # Keras's progress bar showed the epoch: the count on a line of its own
                print(f"epoch {epoch}: {corrupt_text(skipped)}", file=self.out, flush=True)
            for said in self.after(history.rows) if self.after is not None else ():
                print(said, file=self.out, flush=True)
        self.mark = time.perf_counter()
        return stop

    def fail(self, epoch, what):
        kept = runfolder.checkpoint_epochs(self.folder) if self.plan.chief else []
        last = f"the last good checkpoint (epoch {kept[0]}) is kept in {self.folder / runfolder.CHECKPOINTS}" if kept \
            else "no epoch had completed, so there is no checkpoint"
        if self.tty:
            print(file=self.out)
        raise TrainingError(f"epoch {epoch}: {what}; training stopped and this epoch was not saved; {last}",
                            f"{self.hint}, and rerun: training continues from the last good checkpoint")

    def epoch_line(self, row, corrupt=None) -> str:
        """One line per epoch for logs (no carriage returns); `corrupt`: the files dropped in it."""
        values = "  ".join(f"{k} {row[k]:.4f}" for k in row if k not in ("epoch", "learning_rate", "seconds",
                                                                          "images_per_second"))
        return (f"epoch {row['epoch']}/{self.section.epochs}  {values}  lr {row['learning_rate']:.3g}  "
                f"{row['seconds']:.1f}s  {row['images_per_second']:,.0f} img/s"
                + (f"  {corrupt_text(corrupt)}" if corrupt else ""))


def corrupt_text(count) -> str:
    """The epoch line's tail for files left out while reading.

    >>> corrupt_text(3), corrupt_text(1)
    ('3 corrupt files skipped', '1 corrupt file skipped')
    """
    return f"{count:,} corrupt file{'s' if count != 1 else ''} skipped"
