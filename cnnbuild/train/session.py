"""`cnnbuild train`: the one training session every family's run goes through: a checked spec
+ data → a run folder (history, checkpoints, the trained models, curves, metrics).

A family gives the session its models, its training step and its metrics — a `Training`
(the contract below; families/classifier.py and families/gan/training.py write one) — and
the session does the rest, the same for every family, in numbered steps:

   1. take the run folder's lock and refuse another spec's run in it, then start TensorFlow
      (so a busy folder is refused in well under a second);
   2. choose the tf.distribute strategy (strategy.py) — before any other TensorFlow op, as
      splitting the CPU into logical devices and multi-worker collectives require;
   3. seeds and precision;
   4. read and check the data (data.py);
   5. the family's models, optimizers, objective and loop, under the strategy's scope;
   6. the tf.data pipeline with augmentation (pipeline.py);
   7. the run folder: spec.yaml and classes.json (checkpoints.py), and the family's own files;
   8. resume from the newest usable checkpoint in the run folder, if there is one (a damaged
      one is skipped for the next older);
   9. train: the family's loop; after every epoch it *commits* the epoch (checkpoints.Commit:
      checkpoint, history, early stopping, TensorBoard events when asked (events.py));
  10. the results: the family's models and figures, training_curves.png, and metrics.json
      last (its presence means finished). Only the chief of a multi-worker run writes.

The Training contract (duck-typed; every name is read by this module only):

  title            what it trains, in a sentence ("classifier", "GAN")
  spec             the family's spec: `name`, `train` (the section read here), `resolved`
  data_spec        the Spec whose `data`, `input` and `train` the data step reads
  labels           what the data is checked against: a model's output shape; a GAN's (classes,)
  strategies       the train.strategy values it supports (None: all)
  tf_options       tf.config.optimizer experimental options set for the run ({}: none)
  precision(plan)  the Keras dtype policy
  build(keras, tf, plan, loaded, steps_per_epoch, policy) → Parts: its models and optimizers
                   (checkpointed in that order), schedule (or None), loop (`run(pipeline, start,
                   epochs, steps_per_epoch, commit, tty, out)`), and for the pipeline `augment`
                   (or None) and `dense_labels`; built inside the strategy's scope
  folder_files(folder, loaded)            the family's own files in the run folder (after spec.yaml)
  header(loaded, plan, policy)            its part of the first line printed
  started(pipeline, say)                  before the first epoch (a GAN measures its data's spread)
  line(row, corrupt) / after(rows)        an epoch's log line, what to say after it (None: the default)
  hint                                    how to recover when a loss becomes NaN
  finish(folder, history, say) → (metrics, done line)   its models saved, its figures
  curves(rows)                            the training_curves.png panels
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import runfolder
from ..errors import UsageError
from .checkpoints import Commit, History, TrainingError, newest_usable, prepare_folder, refuse_other_run

SKIPPED_SHOWN = 5         # skipped files named one by one before "… and N more"


@dataclass
class Parts:
    """What a family's `build` gives the session (see the contract above)."""

    models: list
    optimizers: list
    loop: object
    schedule: object = None
    augment: object = None
    dense_labels: bool = False
    metrics: dict = field(default_factory=dict)     # figures of the build for metrics.json


def train(training, out=None, stdout=None) -> dict:
    """Run a family's Training; returns the final metrics (a dict), or raises. The run folder
    defaults to runs/NAME/; an unfinished one is resumed."""
    started = time.time()
    spec, section = training.spec, training.spec.train
    if training.strategies is not None and section.strategy not in training.strategies:
        raise UsageError(f"train.strategy {section.strategy}: a {training.title} trains with the "
                         f"{' or '.join(training.strategies)} strategy for now",
                         f"remove train.strategy, or set it to {training.strategies[-1]}")
    folder = Path(out) if out else Path("runs") / spec.name
    from .strategy import writes_run_folder
    with runfolder.owned(folder, "train") if writes_run_folder(section) else contextlib.nullcontext():
        refuse_other_run(folder, spec.resolved)
        from ..tfstart import start_tensorflow
        start_tensorflow()
        import keras
        import tensorflow as tf
        previous = keras.mixed_precision.global_policy(), tf.config.optimizer.get_experimental_options()
        tf.config.optimizer.set_experimental_options(training.tf_options)
        try:
            return _session(training, folder, stdout or sys.stdout, started)
        except Exception as e:
            if runfolder.full_disk(e):
                raise disk_full(folder, e) from None
            raise
        finally:   # training in a Python session must not leave its settings on for what follows
            keras.mixed_precision.set_global_policy(previous[0])
            tf.config.optimizer.set_experimental_options({key: previous[1].get(key, True)
                                                          for key in training.tf_options})


def _session(training, folder, out, started) -> dict:
    import keras
    import tensorflow as tf

    from .strategy import make_plan
    section = training.spec.train
    tty = hasattr(out, "isatty") and out.isatty()

    # 2. the strategy, before any other op
    plan = make_plan(section, tf)

    def say(text):
        if plan.chief:
            print(text, file=out, flush=True)

    # 3. seeds and precision
    if section.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(section.seed)
    # TensorFlow's graph-level seed must not be 0: with 0, get_seed compares the epoch's
    # shuffle seed (a tensor, inside flat_map) to 0 in Python and fails (TF 2.21).
    tf.random.set_seed(section.seed + 1)
    policy = training.precision(plan)
    keras.mixed_precision.set_global_policy(policy)

    # 4. the data, read and checked before anything is built
    from .data import load_data
    loaded = load_data(training.data_spec, training.labels)
    steps_per_epoch = plan.steps_per_epoch(loaded.train.count, section.batch_size)

    # 5. the family's models, optimizers and loop, their variables mirrored over the replicas
    with plan.strategy.scope():
        parts = training.build(keras, tf, plan, loaded, steps_per_epoch, policy)
        for model, optimizer in zip(parts.models, parts.optimizers):
            optimizer.build(model.trainable_variables)

    # 6. the pipeline
    from .pipeline import Pipeline
    pipeline = Pipeline(loaded, training.data_spec.input, section.batch_size, section.seed, augment=parts.augment,
                        dense_labels=parts.dense_labels, data=training.data_spec.data, folder=folder)

    # 7. the run folder
    if plan.chief:
        prepare_folder(folder, training.spec.resolved, loaded.classes)
        training.folder_files(folder, loaded)

    # 8. resume: the chief reads its newest usable checkpoint; every worker starts from it
    history = History(getattr(section, "early_stopping", None))
    variables = [v for model in parts.models for v in model.variables] + \
                [v for optimizer in parts.optimizers for v in optimizer.variables]
    start, meta = resume(folder, plan, history, variables, say)
    start, history.stopped = plan.share_state(start, history.stopped, variables)
    commit = _commit(tf, training, parts, plan, folder, history, loaded, steps_per_epoch, out, tty, started, meta,
                     pipeline)

    say(f"{training.spec.name}: {loaded.describe()}; {training.header(loaded, plan, policy)} → {folder}\n"
        f"input: {pipeline.describe()}")
    name_skipped(folder, loaded.skipped, say)

    # 9. train
    _run(training, parts, pipeline, plan, history, start, steps_per_epoch, commit, folder, meta, tty, out, say)
    trained_now = bool(history.rows) and history.rows[-1]["epoch"] > start
    if commit.events is not None:
        commit.events.close()

    # 10. results
    return _results(training, parts, plan, folder, history, loaded, pipeline, commit, meta, trained_now, out, say)


def _commit(tf, training, parts, plan, folder, history, loaded, steps_per_epoch, out, tty, started, meta, pipeline):
    """The per-epoch commit, with TensorBoard events when the spec asks for them."""
    section = training.spec.train
    events = None
    if plan.chief and getattr(section, "tensorboard", False) and len(parts.models) == 1:
        from .events import EventLog
        events = EventLog(tf, folder, parts.models[0], training.data_spec.input, history.rows)
    with plan.strategy.scope():
        return Commit(tf, folder, plan, section, parts.models, parts.optimizers, parts.schedule, history,
                      plan.images_per_epoch(steps_per_epoch, section.batch_size, loaded.train.count), out, tty,
                      started, wall_before=float(meta.get("wall_time_seconds", 0.0)), events=events,
                      corrupt=pipeline.corrupt_in_epoch, line=training.line, after=training.after, hint=training.hint)


def _run(training, parts, pipeline, plan, history, start, steps_per_epoch, commit, folder, meta, tty, out, say):
    epochs = training.spec.train.epochs
    training.started(pipeline, say)
    if history.stopped or start >= epochs:
        reason = "stopped early" if history.stopped else "complete"
        say(f"{folder} is already {reason} ({start} epoch{'s' if start != 1 else ''}); writing its results")
        return
    if start:
        say(f"resuming after epoch {start} of {epochs}")
    if parts.schedule is not None:
        cycle_note = schedule_cycle(parts.schedule, training.spec.train, meta, start)
        if cycle_note:
            say(cycle_note)
    parts.loop.run(pipeline, start, epochs, steps_per_epoch, commit, tty, out)


def _results(training, parts, plan, folder, history, loaded, pipeline, commit, meta, trained_now, out, say) -> dict:
    from .replicas import replicas_identical, weights_digest
    section = training.spec.train
    identical = all(replicas_identical(model) for model in parts.models)
    digest = weights_digest(parts.models[0])
    line = plan.weights_line(digest)
    if not plan.chief:
        print(line, file=out, flush=True)
        return {"weights_sha256": digest}
    if line:
        say(line)
    if not history.rows:
        raise TrainingError(f"{folder}: no epoch was trained")
    own, done = training.finish(folder, history, say)
    final = own.pop("final_row", history.rows[-1])
    rates = [row["images_per_second"] for row in history.rows]
    metrics = {k: v for k, v in final.items() if k not in ("epoch", "seconds", "images_per_second")}
    metrics.update({
        "epoch": final["epoch"], "epochs": history.rows[-1]["epoch"], "epochs_requested": section.epochs,
        "stopped": history.stopped or "completed",
        "images_per_second": float(np.median(rates)) if rates else None,
        "training_seconds": round(history.seconds(), 3),
        "wall_time_seconds": wall_time(folder, commit, meta, trained_now, say),
        "train_images": loaded.train.count, "corrupt_skipped_per_epoch": pipeline.corrupt_skipped(),
        "validation_images": loaded.validation.count if loaded.validation else 0,
        "task": loaded.task, "classes": len(loaded.classes), "data": loaded.source,
        "strategy": plan.kind, "replicas": plan.replicas, "replicas_identical": identical, "seed": section.seed,
        "weights_sha256": digest, "skipped_files": [{"file": f, "reason": r} for f, r in loaded.skipped],
        **parts.metrics, **own,
    })
    from .curves import write_curves
    write_curves(history.rows, figure_title(folder, "training curves", loaded.source), folder,
                 training.curves(history.rows))
    runfolder.write_json(folder / runfolder.METRICS, metrics)   # last: its presence means finished
    say(done(metrics))
    return metrics


def disk_full(folder, error) -> TrainingError:
    """A full disk in words: the file being written, and what is kept."""
    kept = runfolder.checkpoint_epochs(folder)
    what = f"writing {error.filename}" if getattr(error, "filename", None) else f"writing in {folder}"
    last = f"the last complete checkpoint is epoch {kept[0]}" if kept else "no epoch had completed, so no checkpoint " \
        "was kept"
    return TrainingError(f"the disk is full (no space left on device) while {what}; {last}",
                         f"free space and rerun to resume: cnnbuild train with --out {folder}")


def name_skipped(folder, skipped, say) -> None:
    """Every file or record left out (on_bad: skip), training and validation alike: the first
    few on the console, all of them in RUN/skipped.txt (one `file<TAB>reason` a line)."""
    for file, reason in skipped[:SKIPPED_SHOWN]:
        say(f"skipped {file}: {reason}")
    if len(skipped) > SKIPPED_SHOWN:
        say(f"… and {len(skipped) - SKIPPED_SHOWN} more skipped, all named in {folder / runfolder.SKIPPED}")
    if skipped:
        runfolder.atomic_write(folder / runfolder.SKIPPED, "".join(f"{file}\t{reason}\n" for file, reason in skipped))
    else:
        (folder / runfolder.SKIPPED).unlink(missing_ok=True)     # a resumed run whose data was fixed


def resume(folder, plan, history, variables, say):
    """(epochs done, the checkpoint's meta): the chief's newest usable checkpoint assigned to
    `variables` (models, then optimizers) and its history restored; (0, {}) when there is none."""
    found = newest_usable(folder, [tuple(v.shape) for v in variables], say) if plan.chief else None
    if found is None:
        return 0, {}
    start, meta, model_values, optimizer_values = found
    for variable, value in zip(variables, model_values + optimizer_values):
        variable.assign(value)
    history.rows, history.stopped = meta["history"], meta.get("stopped")
    runfolder.atomic_write(folder / runfolder.HISTORY, runfolder.history_text(history.rows))  # the checkpoint's truth
    return start, meta


def schedule_cycle(schedule, section, meta, start) -> str:
    """Set the cosine schedule's cycle for this session, and say what changed. An unfinished
    run keeps decaying to `final` by the epochs asked now (stretched or shortened when
    --epochs changed). A finished one given more epochs restarts: a new cosine cycle over
    the added epochs, from the base rate (SGDR's warm restart; no second warm-up) — a cycle
    that had reached `final` has nothing left to continue."""
    if section.schedule.name != "cosine":
        return ""      # constant, step and warmup do not depend on the number of epochs
    first, last = meta.get("schedule_cycle") or (0, section.epochs)
    epochs = section.epochs
    if start and start >= last and epochs > start:
        schedule.restart(start, epochs)
        return (f"the cosine schedule ended with epoch {last}; epochs {start + 1}–{epochs} are a new cycle from the "
                f"base learning rate {section.optimizer.base_learning_rate:g} down to "
                f"{(section.schedule.final or 0) * section.optimizer.base_learning_rate:g} (a warm restart)")
    schedule.restart(first, epochs)
    if start and epochs != last and start < epochs:
        return f"the cosine schedule now ends with epoch {epochs} (it was planned for {last})"
    return ""


def wall_time(folder, commit, meta, trained_now, say) -> float:
    """metrics.json's wall_time_seconds: the sessions that trained the run, summed (a resumed
    run adds up each session's time; one that trained nothing new keeps the total — the
    first metrics.json's if it is readable, else the newest checkpoint's)."""
    if trained_now or not meta:
        return commit.wall_time()
    try:
        before = runfolder.read_metrics(folder / runfolder.METRICS)
    except runfolder.DamagedFile as e:
        say(f"warning: {e}; writing it again")
        before = None
    kept = (before or {}).get("wall_time_seconds")
    if isinstance(kept, (int, float)) and (before or {}).get("epochs") == meta.get("epoch"):
        return float(kept)
    return float(meta.get("wall_time_seconds", commit.wall_time()))


def figure_title(folder, what, data) -> str:
    """A run's figures are titled alike — "RUN — what: data" — the curves here and evaluate's
    confusion matrix (serve/evaluate.py draw_confusion) with the run folder's name.

    >>> figure_title(Path("runs/lenet5"), "training curves", "digits")
    'lenet5 — training curves: digits'
    """
    return f"{Path(folder).resolve().name} — {what}: {data}"


def save_model(model, path):
    """A Keras model file, whole or not at all (a temporary sibling, then a rename)."""
    import os
    temporary = path.parent / f".{path.stem}-{os.getpid()}.keras"
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except Exception as e:
        if runfolder.full_disk(e):
            raise runfolder.DiskFull(28, "No space left on device", str(path)) from None   # 28: ENOSPC
        raise
    finally:
        temporary.unlink(missing_ok=True)
