"""`cnnbuild train`: Spec + data → a run folder (history, checkpoints, model.keras, curves).

`train` reads top to bottom as what happens, in numbered steps:

   1. choose the tf.distribute strategy (strategy.py) — before any other TensorFlow op, as
      splitting the CPU into logical devices and multi-worker collectives require;
   2. seeds and precision;
   3. read and check the data (data.py, its readers in sources/);
   4. build the model from the spec under the strategy's scope;
   5. the objective: loss and metrics, read from the model's output layer (objective.py);
   6. the tf.data pipeline with augmentation (pipeline.py);
   7. the run folder: refuse another spec's run, write spec.yaml (checkpoints.py);
   8. compile: schedule, optimizer and the loop the plan names (loop.py);
   9. resume from the newest usable checkpoint in the run folder, if there is one (a
      damaged one is skipped for the next older);
  10. train; after every epoch the loop *commits* it (checkpoints.Commit), and adds it to
      the TensorBoard events when asked (events.py);
  11. at the end write model.keras (the bare model: no optimizer, no augmentation),
      metrics.json and training_curves.png. Only the chief of a multi-worker run writes.

The whole run holds the run folder's lock (runfolder.owned), taken before TensorFlow
starts: a second `train` or an `export` into the folder is refused, naming this one.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import runfolder
from ..errors import SpecError
from .checkpoints import Commit, DamagedCheckpoint, History, TrainingError, newest_usable, prepare_folder, \
    read_checkpoint
from .replicas import local_copies, replicas_identical, weights_digest

SKIPPED_SHOWN = 5         # skipped files named one by one before "… and N more"


def train(spec, out=None, overrides=(), stdout=None):
    """Train a spec's model; returns the final metrics (a dict), or raises. `spec` is a Spec
    from `resolve_spec` (or a path, resolved here with `overrides`); a GanSpec is trained
    by train/gan.py. The run folder defaults to runs/NAME/; an unfinished one is resumed."""
    from ..check import infer
    from ..parse import Spec, resolve_spec
    from ..parse.gan import GanSpec
    started = time.time()
    if not isinstance(spec, (Spec, GanSpec)):
        spec = resolve_spec(spec, overrides)
    if isinstance(spec, GanSpec):          # a generator and a discriminator: train/gan.py
        from .gan import train_gan
        return train_gan(spec, out=out, stdout=stdout)
    report = infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    from ..sources import precheck
    precheck(spec.data, report.output)   # a missing path, an empty class folder, a class count: before TensorFlow
    folder = Path(out) if out else Path("runs") / spec.name
    from .strategy import writes_run_folder
    with runfolder.owned(folder, "train") if writes_run_folder(spec.train) else contextlib.nullcontext():
        import keras
        previous = keras.mixed_precision.global_policy()
        try:
            return _train(spec, report, folder, stdout or sys.stdout, started)
        finally:   # training in a Python session must not leave mixed precision on for what follows
            keras.mixed_precision.set_global_policy(previous)


def _train(spec, report, folder, out, started) -> dict:
    import tensorflow as tf

    from .strategy import make_plan
    section = spec.train
    tty = hasattr(out, "isatty") and out.isatty()

    # 1. the strategy, before any other op
    plan = make_plan(section, tf)

    def say(text):
        if plan.chief:
            print(text, file=out, flush=True)

    # 2. seeds and precision
    import keras

    from .objective import make_objective, make_optimizer, make_schedule, precision_policy
    if section.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(section.seed)
    # TensorFlow's graph-level seed must not be 0: with 0, get_seed compares the epoch's
    # shuffle seed (a tensor, inside flat_map) to 0 in Python and fails (TF 2.21).
    tf.random.set_seed(section.seed + 1)
    policy = precision_policy(section.mixed_precision, plan.accelerator)
    keras.mixed_precision.set_global_policy(policy)

    # 3. the data, read and checked before anything is built
    from .data import load_data
    loaded = load_data(spec, report.output)
    steps_per_epoch = plan.steps_per_epoch(loaded.train.count, section.batch_size)

    # 4. the model, its variables mirrored over the strategy's replicas
    from ..assemble import build_model, ends_in_probabilities
    with plan.strategy.scope():
        model = build_model(spec, report)

    # 5. the objective: logits or probabilities, read from the built model's output layer
    # (whatever the spec's last entry is): Keras rescues from_logits=True on a softmax only in float32
    objective = make_objective(keras, spec, loaded.task, loaded.outputs, ends_in_probabilities(model))

    # 6. the pipeline; augmentation in tf.data, or on the GPU inside the training step
    from ..augment import make_augment
    from .pipeline import Pipeline
    augment_on = section.augment_on
    if augment_on == "auto":
        augment_on = "device" if plan.accelerator == "gpu" else "data"
    augment = make_augment(spec.augment, spec.input, loaded.task, loaded.label_shape)
    pipeline = Pipeline(loaded, spec.input, section.batch_size, section.seed,
                        augment=augment if augment_on == "data" else None,
                        dense_labels=objective.dense_labels, data=spec.data, folder=folder)

    # 7. the run folder
    if plan.chief:
        prepare_folder(folder, spec.resolved, loaded.classes)
        if loaded.task == "classification":   # predict warns when a user's images differ from these
            from .data import image_profile
            runfolder.write_json(folder / runfolder.PROFILE, image_profile(loaded.train))

    # 8. compile: the schedule counts optimizer steps, so it needs the steps per epoch
    history = History(section.early_stopping)
    with plan.strategy.scope():
        schedule = make_schedule(keras, section, steps_per_epoch, section.epochs)
        loop = plan.loop(keras, tf, plan, model, make_optimizer(keras, section, schedule), objective, section,
                         augment if augment_on == "device" else None, policy)
        loop.optimizer.build(model.trainable_variables)

    # 9. resume: the chief reads its newest usable checkpoint; every worker starts from it
    variables = list(model.variables) + list(loop.optimizer.variables)
    start, meta = resume(folder, plan, history, variables, say)
    start, history.stopped = plan.share_state(start, history.stopped, variables)
    cycle_note = schedule_cycle(schedule, section, meta, start)
    events = None
    if plan.chief and section.tensorboard:
        from .events import EventLog
        events = EventLog(tf, folder, model, spec.input, history.rows)
    with plan.strategy.scope():
        commit = Commit(tf, folder, plan, section, model, loop.optimizer, schedule, history,
                        plan.images_per_epoch(steps_per_epoch, section.batch_size, loaded.train.count), out, tty,
                        started, wall_before=float(meta.get("wall_time_seconds", 0.0)), events=events,
                        corrupt=pipeline.corrupt_in_epoch)

    say(f"{spec.name}: {loaded.describe()}; {report.params:,} parameters; "
        f"{plan.kind} strategy, {plan.replicas} replica{'s' if plan.replicas > 1 else ''}"
        f"{', ' + policy if policy != 'float32' else ''} → {folder}\ninput: {pipeline.describe()}")
    for file, reason in loaded.skipped[:SKIPPED_SHOWN]:
        say(f"skipped {file}: {reason}")
    if len(loaded.skipped) > SKIPPED_SHOWN:
        say(f"… and {len(loaded.skipped) - SKIPPED_SHOWN} more skipped")

    # 10. train
    epochs = section.epochs
    if history.stopped or start >= epochs:
        reason = "stopped early" if history.stopped else "complete"
        say(f"{folder} is already {reason} ({start} epoch{'s' if start != 1 else ''}); writing its results")
    else:
        if start:
            say(f"resuming after epoch {start} of {epochs}")
        if cycle_note:
            say(cycle_note)
        loop.run(pipeline, start, epochs, steps_per_epoch, commit, tty, out)
    trained_now = bool(history.rows) and history.rows[-1]["epoch"] > start
    if events is not None:
        events.close()

    # 11. results
    identical = replicas_identical(model)
    digest = weights_digest(model)
    line = plan.weights_line(digest)
    if not plan.chief:
        print(line, file=out, flush=True)
        return {"weights_sha256": digest}
    if line:
        say(line)
    if not history.rows:
        raise TrainingError(f"{folder}: no epoch was trained")
    final, restored = restore_best(folder, history, model, say)
    save_model(keras, spec, report, model, policy, folder)
    rates = [row["images_per_second"] for row in history.rows]
    metrics = {k: v for k, v in final.items() if k not in ("epoch", "seconds", "images_per_second")}
    metrics.update({
        "epoch": final["epoch"], "epochs": history.rows[-1]["epoch"], "epochs_requested": section.epochs,
        "stopped": history.stopped or "completed", "restored_best_epoch": restored,
        "images_per_second": float(np.median(rates)) if rates else None,
        "training_seconds": round(history.seconds(), 3),
        "wall_time_seconds": wall_time(folder, commit, meta, trained_now, say),
        "train_images": loaded.train.count, "corrupt_skipped_per_epoch": pipeline.corrupt_skipped(),
        "validation_images": loaded.validation.count if loaded.validation else 0,
        "task": loaded.task, "classes": len(loaded.classes), "data": loaded.source,
        "strategy": plan.kind, "replicas": plan.replicas, "replicas_identical": identical,
        "mixed_precision": policy, "augment_on": augment_on, "seed": section.seed,
        "loss_function": type(objective.loss).__name__, "from_logits": objective.from_logits,
        "weights_sha256": digest, "skipped_files": [{"file": f, "reason": r} for f, r in loaded.skipped],
    })
    plot(history.rows, figure_title(folder, "training curves", loaded.source), folder)
    runfolder.write_json(folder / runfolder.METRICS, metrics)   # last: its presence means finished
    summary = "  ".join(f"{k} {metrics[k]:.4f}" for k in metrics if k.startswith("val_") and isinstance(metrics[k], float))
    say(f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, "
        f"{summary or 'loss ' + format(metrics['loss'], '.4f')}, {metrics['training_seconds']:.1f}s training, "
        f"{metrics['images_per_second'] or 0:,.0f} img/s → {folder / runfolder.MODEL}")
    return metrics


def resume(folder, plan, history, variables, say):
    """(epochs done, the checkpoint's meta): the chief's newest usable checkpoint assigned to
    `variables` (model, then optimizer) and its history restored; (0, {}) when there is none."""
    found = newest_usable(folder, [tuple(v.shape) for v in variables], say) if plan.chief else None
    if found is None:
        return 0, {}
    start, meta, model_values, optimizer_values = found
    for variable, value in zip(variables, model_values + optimizer_values):
        variable.assign(value)
    history.rows, history.stopped = meta["history"], meta.get("stopped")
    runfolder.atomic_write(folder / runfolder.HISTORY, runfolder.history_text(history.rows))  # the checkpoint's truth
    return start, meta


def restore_best(folder, history, model, say):
    """(the row the run ends with, the restored epoch or None): with restore_best, the best
    epoch's weights put back into `model` from its checkpoint (kept for this by prune)."""
    final, restored = history.rows[-1], history.restored_epoch()
    if not restored or restored == final["epoch"]:
        return final, None
    best = runfolder.checkpoint_path(folder, restored)
    try:
        _, model_values, _ = read_checkpoint(best)
    except DamagedCheckpoint as e:
        say(f"warning: {best} {e}: the best epoch's weights cannot be restored; keeping the last epoch's")
        return final, None
    for variable, value in zip(model.variables, model_values):
        variable.assign(value)
    return next(row for row in history.rows if row["epoch"] == restored), restored


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


def save_model(keras, spec, report, model, policy, folder):
    """model.keras: the spec's model with the trained weights, in float32, with no
    optimizer and no augmentation — what export and predict load."""
    from ..assemble import build_model
    keras.mixed_precision.set_global_policy("float32")
    try:
        bare = build_model(spec, report)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    bare.set_weights([local_copies(v)[0] for v in model.weights])
    temporary = folder / f".model-{os.getpid()}.keras"
    try:
        bare.save(temporary)
        os.replace(temporary, folder / runfolder.MODEL)
    finally:
        temporary.unlink(missing_ok=True)


def plot(rows, title, folder):
    """training_curves.png: each metric per epoch, training and validation side by side."""
    from .curves import write_curves
    names = [k for k in rows[-1] if not k.startswith("val_") and k not in ("epoch", "learning_rate", "seconds",
                                                                           "images_per_second")]
    write_curves(rows, title, folder, [(name, [(name, name)] + [(f"val_{name}", f"val_{name}")] * any(
        f"val_{name}" in row for row in rows)) for name in names])
