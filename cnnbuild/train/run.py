"""`cnnbuild train`: Spec + data → a run folder (history, checkpoints, model.keras, curves).

Reads top to bottom as what happens:

  1. choose the tf.distribute strategy (and split the CPU into logical devices when asked) —
     before any TensorFlow op runs, as TensorFlow requires;
  2. read and check the data (data.py); build the model from the spec under the strategy's
     scope, and choose the loss from its output layer (logits or probabilities);
  3. build the tf.data pipeline with augmentation; compile;
  4. resume from the newest finite checkpoint in the run folder, if there is one;
  5. train: Keras's fit() for the default, mirrored and TPU strategies; a custom loop with
     strategy.run for multi_worker (Keras 3.15's fit() crashes under
     MultiWorkerMirroredStrategy with two workers);
  6. after every epoch, *commit* it: one atomic checkpoint file holding the weights, the
     optimizer state and the history so far, then history.csv. A SIGKILL at any moment
     therefore loses no completed epoch and trains none twice: on resume the checkpoint is
     the truth and history.csv is rewritten from it;
  7. at the end write model.keras (the bare model: no optimizer, no augmentation),
     metrics.json and training_curves.png. Only the chief of a multi-worker run writes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import runfolder
from ..errors import SpecError, UsageError

KEEP_CHECKPOINTS = 2      # the newest two, plus the best epoch's when restore_best needs it


class TrainingError(Exception):
    """Training stopped for a reason the user must act on (a NaN loss, a bad checkpoint)."""


def tf_error_text(e) -> str:
    """One line for a TensorFlow error: its own message, not the graph's "in user code" trace."""
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    # TensorFlow's graph errors start "in user code:" and end with the actual error
    text = (lines[-1] if lines[0].startswith("in user code") else lines[0]) if lines else type(e).__name__
    if type(e).__name__ == "ResourceExhaustedError":
        text += "\n  hint: out of memory: lower train.batch_size"
    return f"{type(e).__name__}: {text}"


def train(spec, out=None, overrides=(), stdout=None):
    """Train a spec's model; returns the final metrics (a dict), or raises. `spec` is a Spec
    from `resolve_spec` (or a path, resolved here with `overrides`). The run folder defaults
    to runs/NAME/; an unfinished one is resumed."""
    from ..check import infer
    from ..spec import Spec, resolve_spec
    started = time.time()
    if not isinstance(spec, Spec):
        spec = resolve_spec(spec, overrides)
    report = infer(spec)
    if not report.valid:
        raise SpecError(report.errors)
    folder = Path(out) if out else Path("runs") / spec.name
    return Trainer(spec, report, spec.resolved, folder, stdout or sys.stdout, started).run()


# ── strategy ───────────────────────────────────────────────────────────────────────────────

def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise UsageError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return config


def _tpu_hinted() -> bool:
    """A TPU is worth looking for: a TPU VM's devices, or the variables Cloud TPU and Colab set.
    (TPUClusterResolver without a hint would query the GCE metadata server, slowly, off GCP.)"""
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")
                or os.path.exists("/dev/vfio/0"))


@dataclasses.dataclass
class Plan:
    """Where training runs: the strategy kind, replicas, and the chief."""

    kind: str
    strategy: object
    replicas: int
    chief: bool
    workers: int = 1
    worker_index: int = 0
    accelerator: str = "cpu"        # cpu | gpu | tpu


def make_plan(train_section, tf) -> Plan:
    """Pick and create the strategy. Called before any other TensorFlow op: logical CPU
    devices and multi-worker collectives can only be configured at start-up."""
    kind = train_section.strategy
    gpus = tf.config.list_physical_devices("GPU")
    config = _tf_config()
    workers = sum(len(v) for k, v in config.get("cluster", {}).items() if k in ("worker", "chief"))
    if kind == "auto":
        if _tpu_hinted():
            kind = "tpu"
        elif workers > 1:
            kind = "multi_worker"
        elif len(gpus) > 1 or (train_section.devices or 1) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    accelerator = "gpu" if gpus else "cpu"
    if kind == "default":
        return Plan(kind, tf.distribute.get_strategy(), 1, True, accelerator=accelerator)
    if kind == "mirrored":
        wanted = train_section.devices
        if gpus:
            count = min(wanted or len(gpus), len(gpus))
            if wanted and wanted > len(gpus):
                raise UsageError(f"train.devices is {wanted}, but this machine has {len(gpus)} GPU(s)")
            devices = [f"/gpu:{i}" for i in range(count)]
        else:
            count = wanted or 1
            if count > 1:   # one physical CPU shown as `count` logical devices (before any op runs)
                cpu = tf.config.list_physical_devices("CPU")[0]
                try:
                    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
                except RuntimeError:
                    raise UsageError("the CPU cannot be split into logical devices after TensorFlow has started; run "
                                     "cnnbuild train in a fresh process") from None
            devices = [f"/cpu:{i}" for i in range(count)]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Plan(kind, strategy, strategy.num_replicas_in_sync, True, accelerator=accelerator)
    if kind == "multi_worker":
        if config and "task" not in config:
            raise UsageError("TF_CONFIG has no 'task': each worker needs {\"task\": {\"type\": \"worker\", \"index\": N}}")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        cluster = config.get("cluster", {})
        chief = task_type == "chief" or (task_type in ("worker", None) and (task_id or 0) == 0 and "chief" not in cluster)
        index = (task_id or 0) + (1 if "chief" in cluster and task_type == "worker" else 0)
        return Plan(kind, strategy, strategy.num_replicas_in_sync, chief, max(workers, 1), index, accelerator)
    # tpu
    if not _tpu_hinted():
        raise UsageError("strategy tpu: no TPU found (no TPU_NAME, COLAB_TPU_ADDR or /dev/accel0)\n  hint: on a TPU VM "
                         "run as is; with a TPU node set TPU_NAME=your-tpu; elsewhere use strategy: auto")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise UsageError(f"strategy tpu: could not connect to the TPU: {tf_error_text(e)}") from None
    return Plan(kind, strategy, strategy.num_replicas_in_sync, True, accelerator="tpu")


# ── model pieces: optimizer, schedule, loss, metrics ───────────────────────────────────────

def make_schedule(keras, section, steps_per_epoch, epochs):
    """The learning rate at each optimizer step, from the `schedule:` section."""
    import tensorflow as tf
    base = section.optimizer.base_learning_rate
    schedule = section.schedule
    warmup_steps = float(schedule.warmup * steps_per_epoch)
    total_steps = float(max(epochs * steps_per_epoch, 1))

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            after = tf.maximum(step - warmup_steps, 0.0)
            rate = tf.constant(base, tf.float32)
            if schedule.name == "step":
                every = float((schedule.every or 10) * steps_per_epoch)
                rate = base * tf.pow(schedule.factor or 0.1, tf.floor(after / every))
            elif schedule.name == "cosine":
                final = schedule.final or 0.0
                progress = tf.minimum(after / max(total_steps - warmup_steps, 1.0), 1.0)
                rate = base * (final + (1 - final) * 0.5 * (1 + tf.cos(math.pi * progress)))
            if warmup_steps:
                rate = tf.where(step < warmup_steps, base * (step + 1) / warmup_steps, rate)
            return rate

        def get_config(self):
            return {"base": base, "schedule": dataclasses.asdict(schedule), "steps_per_epoch": steps_per_epoch}
    return Schedule()


def make_optimizer(keras, section, schedule):
    chosen = section.optimizer
    classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "rmsprop": keras.optimizers.RMSprop}
    arguments = {key: getattr(chosen, key) for key in ("momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon",
                                                        "weight_decay", "clipnorm") if getattr(chosen, key) is not None}
    return classes[chosen.name](learning_rate=schedule, **arguments)


@dataclasses.dataclass
class Objective:
    """Loss and metrics for a task, and the label form they need."""

    loss: object
    metrics: list
    dense_labels: bool      # one-hot (label smoothing, mixup, cutmix, categorical_crossentropy)
    from_logits: bool
    names: tuple


def make_objective(keras, spec, task, outputs, probabilities: bool) -> Objective:
    """`probabilities`: the built model ends in softmax or sigmoid (build.ends_in_probabilities),
    so with `from_logits: auto` the loss takes probabilities; otherwise logits."""
    from ..augment import needs_dense_labels
    from ..spec.sections import metric_names
    section = spec.train
    from_logits = (not probabilities) if section.from_logits == "auto" else section.from_logits
    binary = outputs == 1
    name = section.loss
    if name == "auto":
        name = "binary_crossentropy" if binary else (
            "categorical_crossentropy" if section.label_smoothing or needs_dense_labels(spec.augment)
            else "sparse_categorical_crossentropy")
    if binary and name != "binary_crossentropy":
        raise UsageError(f"train.loss {name} needs one output per class, but the model has a single output "
                         "(a sigmoid): use binary_crossentropy or loss: auto")
    if not binary and name == "binary_crossentropy":
        raise UsageError(f"train.loss binary_crossentropy needs a single sigmoid output; the model has {outputs}")
    if name == "sparse_categorical_crossentropy" and needs_dense_labels(spec.augment):
        raise UsageError("mixup and cutmix blend labels, which sparse_categorical_crossentropy cannot take: use loss: "
                         "auto or categorical_crossentropy")
    dense = name == "categorical_crossentropy"
    if name == "binary_crossentropy":
        loss = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=section.label_smoothing)
    elif dense:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=section.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    names = metric_names(section, task)
    metrics = []
    for metric in names:
        if metric == "accuracy":
            metrics.append(keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if from_logits else 0.5) if binary
                           else keras.metrics.CategoricalAccuracy(name="accuracy") if dense
                           else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        elif metric == "mean_iou":
            metrics.append(keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.0 if from_logits else 0.5,
                                                   name="mean_iou") if binary
                           else keras.metrics.MeanIoU(num_classes=outputs, sparse_y_true=not dense, sparse_y_pred=False,
                                                      name="mean_iou"))
        else:   # top_5_accuracy
            if task != "classification" or outputs <= 5:
                raise UsageError(f"top_5_accuracy needs classification with more than 5 classes "
                                 f"(this is {task} with {outputs})")
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top_5_accuracy") if dense
                           else keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top_5_accuracy"))
    return Objective(loss, metrics, dense, from_logits, names)


# ── replicas: keeping them identical, and telling ─────────────────────────────────────────

def replica_state_sync(tf, strategy, model):
    """A function averaging the non-trainable float variables (batchnorm's moving statistics)
    over all replicas and workers. Keras 3 updates them per replica without aggregation, so
    replicas drift apart within an epoch; averaging at every epoch end makes them equal
    again (what tf.keras's ON_READ/MEAN variables returned when read)."""
    floats = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]
    if strategy.num_replicas_in_sync == 1 or not floats:
        return lambda: None

    @tf.function
    def means():
        def replica():
            context = tf.distribute.get_replica_context()
            return [context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value)) for v in floats]
        return strategy.run(replica)

    def sync():
        for variable, mean in zip(floats, means()):
            variable.assign(strategy.experimental_local_results(mean)[0])
    return sync


def broadcast_from_chief(tf, strategy, tensors):
    """All workers get the chief's values: an all-reduce SUM where only replica 0 contributes."""
    @tf.function
    def run(values):
        def replica(values):
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            out = list(values)
            for dtype in {v.dtype for v in values}:    # one all-reduce per dtype (they cannot mix)
                group = [i for i, v in enumerate(values) if v.dtype == dtype]
                summed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                            [tf.where(first, values[i], tf.zeros_like(values[i])) for i in group])
                for i, value in zip(group, summed):
                    out[i] = value
            return out
        return strategy.run(replica, args=(values,))
    results = run([tf.constant(v) for v in tensors])
    return [strategy.experimental_local_results(r)[0].numpy() for r in results]


def local_copies(variable) -> list:
    """The per-device values of a (possibly mirrored) variable on this worker."""
    value = getattr(variable, "value", variable)
    values = getattr(value, "values", None)
    return [np.asarray(v.numpy()) for v in values] if values else [np.asarray(variable.numpy())]


def weights_digest(model) -> str:
    digest = hashlib.sha256()
    for variable in model.variables:
        digest.update(np.ascontiguousarray(local_copies(variable)[0]).tobytes())
    return digest.hexdigest()


def replicas_identical(model) -> bool:
    return all(all(np.array_equal(copies[0], c) for c in copies[1:])
               for copies in (local_copies(v) for v in model.variables))


# ── the trainer ────────────────────────────────────────────────────────────────────────────

class Trainer:
    def __init__(self, spec, report, resolved, folder, stdout, started):
        self.spec, self.report, self.resolved, self.folder = spec, report, resolved, folder
        self.section = spec.train
        self.out, self.started = stdout, started
        self.tty = hasattr(stdout, "isatty") and stdout.isatty()
        self.history: list[dict] = []
        self.stopped = None

    def say(self, text):
        if self.plan.chief:
            print(text, file=self.out, flush=True)

    def run(self):
        import keras
        previous = keras.mixed_precision.global_policy()
        try:
            return self.train()
        finally:   # training in a Python session must not leave mixed precision on for what follows
            keras.mixed_precision.set_global_policy(previous)

    # 1–4: set up
    def train(self):
        import tensorflow as tf
        self.tf = tf
        self.plan = make_plan(self.section, tf)           # before any other op
        import keras
        self.keras = keras
        if self.section.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(self.section.seed)
        # TensorFlow's graph-level seed must not be 0: with 0, get_seed compares the epoch's
        # shuffle seed (a tensor, inside flat_map) to 0 in Python and fails (TF 2.21).
        tf.random.set_seed(self.section.seed + 1)
        policy = {"auto": "mixed_bfloat16" if self.plan.accelerator == "tpu" else
                  "mixed_float16" if self.plan.accelerator == "gpu" else "float32",
                  "float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[self.section.mixed_precision]
        keras.mixed_precision.set_global_policy(policy)
        self.policy = policy

        from ..augment import make_augment
        from ..build import build_model, ends_in_probabilities
        from .data import Pipeline, load_data
        self.loaded = load_data(self.spec, self.report.output)
        if self.section.batch_size % self.plan.replicas and self.plan.kind == "multi_worker":
            raise UsageError(f"train.batch_size {self.section.batch_size} is not divisible by the "
                             f"{self.plan.replicas} replicas of this multi-worker run")
        with self.plan.strategy.scope():
            self.model = build_model(self.spec, self.report)
        # logits or probabilities, read from the built model's output layer (whatever the spec's
        # last entry is): Keras rescues from_logits=True on a softmax only in float32
        self.objective = make_objective(keras, self.spec, self.loaded.task, self.loaded.outputs,
                                        ends_in_probabilities(self.model))
        self.augment_on = self.section.augment_on
        if self.augment_on == "auto":
            self.augment_on = "device" if self.plan.accelerator == "gpu" else "data"
        augment = make_augment(self.spec.augment, self.spec.input, self.loaded.task, self.loaded.label_shape)
        self.device_augment = augment if self.augment_on == "device" else None
        self.pipeline = Pipeline(self.loaded, self.spec.input, self.section.batch_size, self.section.seed,
                                 augment=augment if self.augment_on == "data" else None,
                                 dense_labels=self.objective.dense_labels, cache=self.spec.data.cache)
        if self.plan.kind == "multi_worker":
            per_replica = self.section.batch_size // self.plan.replicas
            local = self.plan.replicas // self.plan.workers
            per_worker_items = self.loaded.train.count // self.plan.workers
            self.steps_per_epoch = (per_worker_items // per_replica) // max(local, 1)
            if self.steps_per_epoch < 1:
                raise UsageError(f"{self.loaded.train.count} training images are too few for a batch of "
                                 f"{self.section.batch_size} over {self.plan.replicas} replicas")
        else:
            self.steps_per_epoch = self.pipeline.steps_per_epoch

        self.prepare_folder()
        with self.plan.strategy.scope():
            self.compile()
        start = self.resume()
        self.say(f"{self.spec.name}: {self.loaded.describe()}; {self.report.params:,} parameters; "
                 f"{self.plan.kind} strategy, {self.plan.replicas} replica{'s' if self.plan.replicas > 1 else ''}"
                 f"{', ' + policy if policy != 'float32' else ''} → {self.folder}")
        for file, reason in self.loaded.skipped[:5]:
            self.say(f"skipped {file}: {reason}")
        if len(self.loaded.skipped) > 5:
            self.say(f"… and {len(self.loaded.skipped) - 5} more skipped")

        epochs = self.section.epochs
        if self.stopped or start >= epochs:
            reason = "stopped early" if self.stopped else "complete"
            self.say(f"{self.folder} is already {reason} ({start} epoch{'s' if start != 1 else ''}); writing its results")
        else:
            if start:
                self.say(f"resuming after epoch {start} of {epochs}")
            if self.plan.kind == "multi_worker":
                self.custom_loop(start, epochs)
            else:
                self.fit(start, epochs)
        return self.finish()

    def compile(self):
        """The optimizer with its schedule, and (but for multi_worker's own loop) Keras's compile."""
        keras = self.keras
        self.schedule = make_schedule(keras, self.section, self.steps_per_epoch, self.section.epochs)
        optimizer = make_optimizer(keras, self.section, self.schedule)
        if self.plan.kind == "multi_worker":
            if self.policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
        else:
            trained = self.model
            if self.device_augment is not None:
                trained = _augmenting_model(keras, self.tf, self.model, self.device_augment, self.section.seed)
            jit = self.section.jit_compile
            trained.compile(optimizer=optimizer, loss=self.objective.loss, metrics=self.objective.metrics,
                            jit_compile=jit, steps_per_execution=self.section.steps_per_execution)
            self.training_model = trained
            self.optimizer = trained.optimizer
        self.optimizer.build(self.model.trainable_variables)
        self.sync_replicas = replica_state_sync(self.tf, self.plan.strategy, self.model)

    # the run folder
    def prepare_folder(self):
        """Refuse a folder holding another spec's run (one with checkpoints); write spec.yaml
        and classes.json."""
        import yaml
        if not self.plan.chief:
            return
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder; choose another --out")
        spec_file = folder / runfolder.SPEC
        started = bool(runfolder.checkpoint_epochs(folder))
        if started and spec_file.is_file():
            try:
                before = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):
                before = None
            difference = _spec_difference(before, self.resolved)
            if difference:
                raise UsageError(f"{folder} holds a run of a different spec ({difference})\n  hint: choose a new folder "
                                 f"with --out, or delete {folder} to start over (on resume only train: values other "
                                 f"than seed may change)")
        elif started:
            raise UsageError(f"{folder} has checkpoints but no {runfolder.SPEC}; choose another --out")
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (folder / runfolder.CHECKPOINTS).glob(".epoch-*"):   # a write cut short by a kill
            stale.unlink(missing_ok=True)
        runfolder.atomic_write(spec_file, yaml.safe_dump(self.resolved, sort_keys=False, allow_unicode=True))
        runfolder.write_json(folder / runfolder.CLASSES, list(self.loaded.classes))

    def variables(self):
        return list(self.model.variables), list(self.optimizer.variables)

    def resume(self) -> int:
        """Load the newest checkpoint whose values are all finite; returns its epoch (0: none)."""
        start, values = 0, None
        if self.plan.chief:
            for epoch in runfolder.checkpoint_epochs(self.folder):
                path = runfolder.checkpoint_path(self.folder, epoch)
                try:
                    meta, model_values, optimizer_values = _read_checkpoint(path)
                except (OSError, ValueError, KeyError) as e:
                    self.say(f"warning: {path} cannot be read ({e}); trying an older checkpoint")
                    continue
                bad = [i for i, v in enumerate(model_values + optimizer_values) if not np.all(np.isfinite(v))]
                if bad:
                    self.say(f"warning: {path} holds NaN or infinite values; trying an older checkpoint")
                    continue
                self.check_matches(path, model_values, optimizer_values)
                start, values = epoch, (model_values, optimizer_values)
                self.history = meta["history"]
                self.stopped = meta.get("stopped")
                break
            else:
                if runfolder.checkpoint_epochs(self.folder):
                    raise TrainingError(f"{self.folder}: no usable checkpoint (all are unreadable or hold NaN values)\n"
                                        f"  hint: delete {self.folder / runfolder.CHECKPOINTS} to start over")
        model_vars, optimizer_vars = self.variables()
        if values is not None:
            for variable, value in zip(model_vars + optimizer_vars, values[0] + values[1]):
                variable.assign(value)
            runfolder.atomic_write(self.folder / runfolder.HISTORY, runfolder.history_text(self.history))
        if self.plan.kind == "multi_worker":   # every worker continues from the chief's state
            flags = [np.array([float(start), 1.0 if self.stopped else 0.0], np.float32)]
            current = [np.asarray(v.numpy()) for v in model_vars + optimizer_vars]
            shared = broadcast_from_chief(self.tf, self.plan.strategy, flags + current)
            start, self.stopped = int(round(shared[0][0])), bool(shared[0][1])
            for variable, value in zip(model_vars + optimizer_vars, shared[1:]):
                variable.assign(value)
        return start

    def check_matches(self, path, model_values, optimizer_values):
        model_vars, optimizer_vars = self.variables()
        shapes = [tuple(v.shape) for v in model_vars + optimizer_vars]
        stored = [tuple(v.shape) for v in model_values + optimizer_values]
        if shapes != stored:
            raise TrainingError(f"{path} does not fit this model ({len(stored)} stored values, {len(shapes)} needed)\n"
                                f"  hint: train into a new folder with --out")

    # 5: training
    def fit(self, start, epochs):
        keras = self.keras
        trainer = self

        class Commit(keras.callbacks.Callback):
            """After each epoch: sync replicas, check for NaN, checkpoint, history, early stop."""

            def on_epoch_begin(self, epoch, logs=None):
                self.began = time.perf_counter()
                self.trained = None

            def on_test_begin(self, logs=None):
                if self.trained is None:    # validation starts: the training part of the epoch is over
                    self.trained = time.perf_counter() - self.began

            def on_epoch_end(self, epoch, logs=None):
                trained = self.trained if self.trained is not None else time.perf_counter() - self.began
                if trainer.commit(epoch + 1, dict(logs or {}), trained):
                    self.model.stop_training = True

        dataset = self.pipeline.train_epochs(start, epochs)
        self.mark = time.perf_counter()
        self.training_model.fit(dataset, epochs=epochs, initial_epoch=start, steps_per_epoch=self.steps_per_epoch,
                         validation_data=self.pipeline.validation(), callbacks=[Commit()], shuffle=False,
                         verbose=1 if self.tty else 0)

    def custom_loop(self, start, epochs):
        """multi_worker: strategy.run over per-worker shards; the same commit per epoch."""
        tf, keras, plan = self.tf, self.keras, self.plan
        strategy, model, optimizer = plan.strategy, self.model, self.optimizer
        objective = self.objective
        global_batch = self.section.batch_size
        per_replica = global_batch // plan.replicas
        loss_fn = objective.loss.__class__.from_config({**objective.loss.get_config(), "reduction": None})
        with strategy.scope():
            loss_mean = keras.metrics.Mean(name="loss")
            metrics = [m.__class__.from_config(m.get_config()) for m in objective.metrics]
        val_loss = keras.metrics.Mean(name="loss")
        val_metrics = [m.__class__.from_config(m.get_config()) for m in objective.metrics]
        augment, seed = self.device_augment, self.section.seed

        def replica_step(images, labels):
            if augment is not None:
                images, labels = augment(images, labels, tf.stack([tf.constant(seed, tf.int64),
                                                                   tf.cast(optimizer.iterations, tf.int64)]))
            with tf.GradientTape() as tape:
                predictions = model(images, training=True)
                per_item = tf.cast(loss_fn(labels, predictions), tf.float32)
                items = tf.cast(tf.size(per_item), tf.float32)
                # the global mean: this replica's sum over the items of the whole global batch
                loss = tf.reduce_sum(per_item) / (items / tf.cast(tf.shape(per_item)[0], tf.float32) * global_batch)
                if model.losses:
                    loss += tf.add_n(model.losses) / plan.replicas
                scaled = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            loss_mean.update_state(tf.reduce_mean(per_item), sample_weight=tf.cast(tf.shape(per_item)[0], tf.float32))
            for metric in metrics:
                metric.update_state(labels, predictions)

        @tf.function(jit_compile=self.section.jit_compile is True)
        def train_step(iterator):
            images, labels = next(iterator)
            strategy.run(replica_step, args=(images, labels))

        @tf.function
        def validate_step(images, labels):
            predictions = model(images, training=False)
            val_loss.update_state(objective.loss(labels, predictions), sample_weight=tf.cast(tf.shape(images)[0], tf.float32))
            for metric in val_metrics:
                metric.update_state(labels, predictions)

        def shard(epoch):
            def dataset(context):
                return self.pipeline.train_epoch(epoch, shard=(context.num_input_pipelines, context.input_pipeline_id,
                                                               per_replica)).prefetch(tf.data.AUTOTUNE)
            return dataset

        self.mark = time.perf_counter()
        for epoch in range(start, epochs):
            began = time.perf_counter()
            for metric in [loss_mean, *metrics, val_loss, *val_metrics]:
                metric.reset_state()
            iterator = iter(strategy.distribute_datasets_from_function(shard(epoch)))
            bar = keras.utils.Progbar(self.steps_per_epoch) if self.tty and plan.chief else None
            if bar is not None:
                print(f"Epoch {epoch + 1}/{epochs}", file=self.out)
            for step in range(self.steps_per_epoch):
                train_step(iterator)
                if bar is not None:
                    bar.update(step + 1, [("loss", float(loss_mean.result()))])
            logs = {"loss": float(loss_mean.result()), **{m.name: float(m.result()) for m in metrics}}
            trained = time.perf_counter() - began
            validation = self.pipeline.validation()
            if validation is not None:
                for images, labels in validation:
                    validate_step(images, labels)
                logs.update({"val_loss": float(val_loss.result()), **{f"val_{m.name}": float(m.result()) for m in val_metrics}})
            stop = self.commit(epoch + 1, logs, trained)
            flag = broadcast_from_chief(tf, strategy, [np.array([1.0 if stop else 0.0], np.float32)])[0]
            if flag[0] > 0.5:
                break

    # 6: the commit
    def commit(self, epoch, logs, trained_seconds) -> bool:
        """Make epoch `epoch` (1-based) durable; returns True to stop (early stopping).
        `trained_seconds` is the training part of the epoch (for images/second); the row's
        `seconds` run from the previous commit, so they add up to the whole run's time."""
        seconds = time.perf_counter() - self.mark
        self.sync_replicas()
        bad = [k for k, v in logs.items() if k.endswith("loss") and not math.isfinite(float(v))]
        if bad:
            self.fail(epoch, f"the {bad[0].replace('_', ' ')} became {logs[bad[0]]}")
        model_vars, optimizer_vars = self.variables()
        model_values = [np.asarray(local_copies(v)[0]) for v in model_vars]
        if not all(np.all(np.isfinite(v)) for v in model_values):
            self.fail(epoch, "the weights became NaN or infinite")
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items() if k != "learning_rate"}}
        row["learning_rate"] = float(self.schedule(max(int(self.optimizer.iterations.numpy()) - 1, 0)))
        row["seconds"] = round(seconds, 4)
        images = self.steps_per_epoch * self.section.batch_size if self.plan.kind == "multi_worker" else self.loaded.train.count
        row["images_per_second"] = round(images / max(trained_seconds, 1e-9), 2)
        self.history.append(row)
        stop = self.early_stop()
        if stop:
            self.stopped = "early_stopping"
        if self.plan.chief:
            optimizer_values = [np.asarray(local_copies(v)[0]) for v in optimizer_vars]
            meta = {"epoch": epoch, "history": self.history, "stopped": self.stopped, "best_epoch": self.best_epoch()}
            runfolder.atomic_write(runfolder.checkpoint_path(self.folder, epoch),
                                   _checkpoint_bytes(meta, model_values, optimizer_values))
            runfolder.atomic_write(self.folder / runfolder.HISTORY, runfolder.history_text(self.history))
            self.prune_checkpoints(epoch)
            if not self.tty:
                print(self.epoch_line(row), file=self.out, flush=True)
        self.mark = time.perf_counter()
        return stop

    def training_seconds(self) -> float:
        return float(sum(row["seconds"] for row in self.history))

    def fail(self, epoch, what):
        kept = runfolder.checkpoint_epochs(self.folder) if self.plan.chief else []
        last = f"the last good checkpoint (epoch {kept[0]}) is kept in {self.folder / runfolder.CHECKPOINTS}" if kept \
            else "no epoch had completed, so there is no checkpoint"
        rate = self.section.optimizer.base_learning_rate
        if self.tty:
            print(file=self.out)
        raise TrainingError(f"epoch {epoch}: {what}; training stopped and this epoch was not saved; {last}\n"
                            f"  hint: lower train.optimizer.learning_rate (now {rate:g}), add a warm-up "
                            f"(train.schedule.warmup_epochs) or set train.optimizer.clipnorm, and rerun: training "
                            f"continues from the last good checkpoint")

    def monitor_values(self):
        stopping = self.section.early_stopping
        return [(row["epoch"], row.get(stopping.monitor)) for row in self.history] if stopping else []

    def best_epoch(self):
        stopping = self.section.early_stopping
        if stopping is None:
            return None
        best_epoch, best = None, None
        for epoch, value in self.monitor_values():
            if value is None or not math.isfinite(value):
                continue
            better = best is None or (value > best + stopping.min_delta if stopping.maximize
                                      else value < best - stopping.min_delta)
            if better:
                best_epoch, best = epoch, value
        return best_epoch

    def early_stop(self) -> bool:
        stopping = self.section.early_stopping
        if stopping is None or not self.history:
            return False
        best = self.best_epoch()
        return best is not None and self.history[-1]["epoch"] - best >= stopping.patience

    def prune_checkpoints(self, newest):
        keep = set(sorted(runfolder.checkpoint_epochs(self.folder), reverse=True)[:KEEP_CHECKPOINTS])
        if self.section.early_stopping and self.section.early_stopping.restore_best and self.best_epoch():
            keep.add(self.best_epoch())
        for epoch in runfolder.checkpoint_epochs(self.folder):
            if epoch not in keep and epoch < newest:
                runfolder.checkpoint_path(self.folder, epoch).unlink(missing_ok=True)

    def epoch_line(self, row) -> str:
        """One line per epoch for logs (no carriage returns)."""
        values = "  ".join(f"{k} {row[k]:.4f}" for k in row if k not in ("epoch", "learning_rate", "seconds",
                                                                          "images_per_second"))
        return (f"epoch {row['epoch']}/{self.section.epochs}  {values}  lr {row['learning_rate']:.3g}  "
                f"{row['seconds']:.1f}s  {row['images_per_second']:,.0f} img/s")

    # 7: results
    def finish(self) -> dict:
        identical = replicas_identical(self.model)
        digest = weights_digest(self.model)
        if not self.plan.chief:
            print(f"worker {self.plan.worker_index}: weights sha256 {digest}", file=self.out, flush=True)
            return {"weights_sha256": digest}
        if self.plan.kind == "multi_worker":
            self.say(f"worker {self.plan.worker_index} (chief): weights sha256 {digest}")
        if not self.history:
            raise TrainingError(f"{self.folder}: no epoch was trained")
        final = self.history[-1]
        stopping = self.section.early_stopping
        restored = None
        if stopping and stopping.restore_best and self.best_epoch() and self.best_epoch() != final["epoch"]:
            restored = self.best_epoch()
            path = runfolder.checkpoint_path(self.folder, restored)
            _, model_values, _ = _read_checkpoint(path)
            for variable, value in zip(self.model.variables, model_values):
                variable.assign(value)
            final = next(row for row in self.history if row["epoch"] == restored)
        self.save_model()
        rates = [row["images_per_second"] for row in self.history]
        metrics = {k: v for k, v in final.items() if k not in ("epoch", "seconds", "images_per_second")}
        metrics.update({
            "epoch": final["epoch"], "epochs": self.history[-1]["epoch"], "epochs_requested": self.section.epochs,
            "stopped": self.stopped or "completed", "restored_best_epoch": restored,
            "images_per_second": float(np.median(rates)) if rates else None,
            "training_seconds": round(self.training_seconds(), 3),
            "wall_time_seconds": round(time.time() - self.started, 3),
            "train_images": self.loaded.train.count,
            "validation_images": self.loaded.validation.count if self.loaded.validation else 0,
            "task": self.loaded.task, "classes": len(self.loaded.classes), "data": self.loaded.source,
            "strategy": self.plan.kind, "replicas": self.plan.replicas, "replicas_identical": identical,
            "mixed_precision": self.policy, "augment_on": self.augment_on, "seed": self.section.seed,
            "loss_function": type(self.objective.loss).__name__, "from_logits": self.objective.from_logits,
            "weights_sha256": digest, "skipped_files": [{"file": f, "reason": r} for f, r in self.loaded.skipped],
        })
        self.plot()
        runfolder.write_json(self.folder / runfolder.METRICS, metrics)   # last: its presence means finished
        summary = "  ".join(f"{k} {metrics[k]:.4f}" for k in metrics if k.startswith("val_") and isinstance(metrics[k], float))
        self.say(f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, {summary or 'loss ' + format(metrics['loss'], '.4f')}, "
                 f"{metrics['training_seconds']:.1f}s training, {metrics['images_per_second'] or 0:,.0f} img/s → "
                 f"{self.folder / runfolder.MODEL}")
        return metrics

    def save_model(self):
        """model.keras: the spec's model with the trained weights, in float32, with no
        optimizer and no augmentation — what export and predict load."""
        from ..build import build_model
        keras = self.keras
        keras.mixed_precision.set_global_policy("float32")
        try:
            bare = build_model(self.spec, self.report)
        finally:
            keras.mixed_precision.set_global_policy(self.policy)
        bare.set_weights([local_copies(v)[0] for v in self.model.weights])
        temporary = self.folder / f".model-{os.getpid()}.keras"
        try:
            bare.save(temporary)
            os.replace(temporary, self.folder / runfolder.MODEL)
        finally:
            temporary.unlink(missing_ok=True)

    def plot(self):
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        rows = self.history
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
        figure.suptitle(f"{self.spec.name}: {self.loaded.source}")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        runfolder.atomic_write(self.folder / runfolder.CURVES, buffer.getvalue())


def _augmenting_model(keras, tf, model, augment, seed):
    """`augment_on: device`: a training-only wrapper whose train_step augments the batch on
    the device first. Only the inner model is ever saved."""
    class AugmentingModel(keras.Model):
        def __init__(self):
            super().__init__(name=f"{model.name}_training")
            self.inner = model

        def call(self, inputs, training=False):
            return self.inner(inputs, training=training)

        def train_step(self, data):
            images, labels = data
            step = tf.cast(self.optimizer.iterations, tf.int64)
            images, labels = augment(images, labels, tf.stack([tf.constant(seed, tf.int64), step]))
            return super().train_step((images, labels))
    return AugmentingModel()


def _spec_difference(before, now) -> str:
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


def _checkpoint_bytes(meta, model_values, optimizer_values) -> bytes:
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays.update({f"model_{i:05d}": v for i, v in enumerate(model_values)})
    arrays.update({f"optimizer_{i:05d}": v for i, v in enumerate(optimizer_values)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_checkpoint(path):
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        model = [archive[k] for k in sorted(k for k in archive.files if k.startswith("model_"))]
        optimizer = [archive[k] for k in sorted(k for k in archive.files if k.startswith("optimizer_"))]
    return meta, model, optimizer
