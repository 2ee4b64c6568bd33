"""`cnnbuild train`: Spec + data → a run folder (history, checkpoints, model.keras, curves).

`train` reads top to bottom as what happens, in numbered steps:

   1. choose the tf.distribute strategy (strategy.py) — before any other TensorFlow op, as
      splitting the CPU into logical devices and multi-worker collectives require;
   2. seeds and precision;
   3. read and check the data (data.py, sources.py);
   4. build the model from the spec under the strategy's scope;
   5. the objective: loss and metrics, read from the model's output layer (objective.py);
   6. the tf.data pipeline with augmentation (pipeline.py);
   7. the run folder: refuse another spec's run, write spec.yaml (checkpoints.py);
   8. compile: schedule, optimizer and the loop the plan names (loop.py);
   9. resume from the newest usable checkpoint in the run folder, if there is one;
  10. train; after every epoch the loop *commits* it (checkpoints.Commit);
  11. at the end write model.keras (the bare model: no optimizer, no augmentation),
      metrics.json and training_curves.png. Only the chief of a multi-worker run writes.
"""
from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import runfolder
from ..errors import SpecError
from .checkpoints import Commit, History, TrainingError, newest_usable, prepare_folder, read_checkpoint
from .replicas import local_copies, replicas_identical, weights_digest

SKIPPED_SHOWN = 5         # skipped files named one by one before "… and N more"


def train(spec, out=None, overrides=(), stdout=None):
    """Train a spec's model; returns the final metrics (a dict), or raises. `spec` is a Spec
    from `resolve_spec` (or a path, resolved here with `overrides`). The run folder defaults
    to runs/NAME/; an unfinished one is resumed."""
    from ..check import infer
    from ..parse import Spec, resolve_spec
    started = time.time()
    if not isinstance(spec, Spec):
        spec = resolve_spec(spec, overrides)
    report = infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    folder = Path(out) if out else Path("runs") / spec.name
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
    from ..build import build_model, ends_in_probabilities
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
                        dense_labels=objective.dense_labels, cache=spec.data.cache)

    # 7. the run folder
    if plan.chief:
        prepare_folder(folder, spec.resolved, loaded.classes)

    # 8. compile: the schedule counts optimizer steps, so it needs the steps per epoch
    history = History(section.early_stopping)
    with plan.strategy.scope():
        schedule = make_schedule(keras, section, steps_per_epoch, section.epochs)
        loop = plan.loop(keras, tf, plan, model, make_optimizer(keras, section, schedule), objective, section,
                         augment if augment_on == "device" else None, policy)
        loop.optimizer.build(model.trainable_variables)
        commit = Commit(tf, folder, plan, section, model, loop.optimizer, schedule, history,
                        plan.images_per_epoch(steps_per_epoch, section.batch_size, loaded.train.count), out, tty)

    # 9. resume: the chief reads its newest usable checkpoint; every worker starts from it
    variables = list(model.variables) + list(loop.optimizer.variables)
    start = 0
    found = newest_usable(folder, [tuple(v.shape) for v in variables], say) if plan.chief else None
    if found is not None:
        start, meta, model_values, optimizer_values = found
        for variable, value in zip(variables, model_values + optimizer_values):
            variable.assign(value)
        history.rows, history.stopped = meta["history"], meta.get("stopped")
        runfolder.atomic_write(folder / runfolder.HISTORY, runfolder.history_text(history.rows))
    start, history.stopped = plan.share_state(start, history.stopped, variables)

    say(f"{spec.name}: {loaded.describe()}; {report.params:,} parameters; "
        f"{plan.kind} strategy, {plan.replicas} replica{'s' if plan.replicas > 1 else ''}"
        f"{', ' + policy if policy != 'float32' else ''} → {folder}")
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
        loop.run(pipeline, start, epochs, steps_per_epoch, commit, tty, out)

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
    final = history.rows[-1]
    restored = history.restored_epoch()
    if restored and restored != final["epoch"]:
        _, model_values, _ = read_checkpoint(runfolder.checkpoint_path(folder, restored))
        for variable, value in zip(model.variables, model_values):
            variable.assign(value)
        final = next(row for row in history.rows if row["epoch"] == restored)
    else:
        restored = None
    save_model(keras, spec, report, model, policy, folder)
    rates = [row["images_per_second"] for row in history.rows]
    metrics = {k: v for k, v in final.items() if k not in ("epoch", "seconds", "images_per_second")}
    metrics.update({
        "epoch": final["epoch"], "epochs": history.rows[-1]["epoch"], "epochs_requested": section.epochs,
        "stopped": history.stopped or "completed", "restored_best_epoch": restored,
        "images_per_second": float(np.median(rates)) if rates else None,
        "training_seconds": round(history.seconds(), 3),
        "wall_time_seconds": round(time.time() - started, 3),
        "train_images": loaded.train.count,
        "validation_images": loaded.validation.count if loaded.validation else 0,
        "task": loaded.task, "classes": len(loaded.classes), "data": loaded.source,
        "strategy": plan.kind, "replicas": plan.replicas, "replicas_identical": identical,
        "mixed_precision": policy, "augment_on": augment_on, "seed": section.seed,
        "loss_function": type(objective.loss).__name__, "from_logits": objective.from_logits,
        "weights_sha256": digest, "skipped_files": [{"file": f, "reason": r} for f, r in loaded.skipped],
    })
    plot(history.rows, f"{spec.name}: {loaded.source}", folder)
    runfolder.write_json(folder / runfolder.METRICS, metrics)   # last: its presence means finished
    summary = "  ".join(f"{k} {metrics[k]:.4f}" for k in metrics if k.startswith("val_") and isinstance(metrics[k], float))
    say(f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, "
        f"{summary or 'loss ' + format(metrics['loss'], '.4f')}, {metrics['training_seconds']:.1f}s training, "
        f"{metrics['images_per_second'] or 0:,.0f} img/s → {folder / runfolder.MODEL}")
    return metrics


def save_model(keras, spec, report, model, policy, folder):
    """model.keras: the spec's model with the trained weights, in float32, with no
    optimizer and no augmentation — what export and predict load."""
    from ..build import build_model
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
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    epochs = [row["epoch"] for row in rows]
    names = [k for k in rows[-1] if not k.startswith("val_") and k not in ("epoch", "learning_rate", "seconds",
                                                                           "images_per_second")]
    figure = Figure(figsize=(4.5 * len(names), 3.6), dpi=100)
    for i, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), i + 1)
        axes.plot(epochs, [row.get(name, float("nan")) for row in rows], marker=".", label=name)
        if any(f"val_{name}" in row for row in rows):
            axes.plot(epochs, [row.get(f"val_{name}", float("nan")) for row in rows], marker=".", label=f"val_{name}")
        axes.set_xlabel("epoch")
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    runfolder.atomic_write(folder / runfolder.CURVES, buffer.getvalue())
