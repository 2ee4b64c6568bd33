"""The classifier family: one network from an image to class scores — or, when the data holds
masks, to a class per pixel (segmentation: the same stages; the data section's task and the
network's output shape decide, see train/objective.py). A spec without another family's
top-level keys is a classifier's."""
from __future__ import annotations

from dataclasses import field
from pathlib import Path

from ..records import record
from ..parse.parser import Spec
from .base import Evaluated, Family


@record()
class Checked:
    """The check of a classifier spec: its Report, and the problems its data has (files named
    that are not there, class folders against the model's outputs)."""

    report: object
    data_errors: list = field(default_factory=list)     # Problems at the spec's data: value

    @property
    def valid(self) -> bool:
        return self.report.valid and not self.data_errors

    @property
    def errors(self) -> list:
        return list(self.report.errors) + list(self.data_errors)     # both located Problems

    @property
    def warnings(self) -> list:
        return list(self.report.warnings)

    def table(self) -> str:
        from ..check import format_table
        return format_table(self.report)

    def document(self) -> dict:
        # "valid" answers the exit code's question: a spec whose data is missing does not train
        extra = {"valid": False, "data_errors": [problem.to_json() for problem in self.data_errors]} \
            if self.data_errors else {}
        return self.report.to_json() | extra


def parse(root, resolved=None, problems=()):
    from ..parse.parser import from_node
    return from_node(root, resolved=resolved, problems=problems)


def check(spec, files_only: bool = True) -> Checked:
    from ..check import infer
    from ..sources import data_problems
    report = infer(spec)
    found = data_problems(spec.data, report.output, files_only=files_only) if report.valid else []
    return Checked(report, located_data_problems(spec, found) if found else [])


def located_data_problems(spec, found) -> list:
    """Data problems as Problems at the spec's `data:` value (file:line:column), read from the
    spec file's located tree (the Spec carries no places of its own)."""
    from ..errors import Failure, Problem, SpecError
    from ..parse import read_tree
    where = spec.where.at("data")
    try:
        root = read_tree(spec.file)
        if isinstance(root.value, dict) and "data" in root.value:
            where = root.value["data"].where.at("data")
    except (SpecError, Failure, OSError, ValueError):   # a spec given as text, or changed since: its start
        pass
    return [Problem(where, problem.message, problem.hint) for problem in found]   # DataErrors: message and hint


def networks(spec, checked) -> list:
    return [("", spec, checked.report)]


def with_budget(spec, max_params=None, max_memory=None):
    from ..parse import with_budget as applied
    return applied(spec, max_params, max_memory)


def train(spec, checked, out=None, stdout=None) -> dict:
    from ..train.session import train as session
    return session(Training(spec, checked.report), out=out, stdout=stdout)


def owns_run(folder) -> bool:
    return True     # the default, as for specs


def export(run, out=None, format="savedmodel") -> list:
    import time

    from ..serve.export import LABELS, export_run
    start = time.perf_counter()
    manifest = export_run(run, out, format)
    check = manifest["verified"]
    channels = manifest["input"]["shape"][-1]
    return [f"exported {run} → {manifest['path']} ({LABELS[manifest['format']]}, {len(manifest['classes'])} classes, "
            f"input uint8 [batch, height, width, {channels or 'channels'}]"
            f"{'' if channels else ' with 1, 3 or 4 channels'}, resized to "
            f"{'×'.join(map(str, manifest['input']['training_size']))})",
            f"verified with {check['runtime']}: max |export − Keras| = {check['max_abs_diff']:.2e} on {check['images']} "
            f"images (≤ {check['tolerance']:g}); two calls identical; {time.perf_counter() - start:.1f} s"]


def evaluate(run, options) -> Evaluated:
    from .. import runfolder
    from ..errors import UsageError
    from ..serve.evaluate import PNG, draw_confusion, evaluate_run, format_result
    if options.get("classifier"):
        raise UsageError(f"--classifier: {run} is not a GAN run (no gan.json); --classifier scores a GAN's samples; "
                         f"evaluate a classifier run without it: cnnbuild evaluate {run}")
    result = evaluate_run(run, options.get("data"))
    png = Path(options["out"]) if options.get("out") else Path(run) / PNG
    runfolder.write_json(png.with_suffix(".json"), result.to_json())
    draw_confusion(result, png)
    return Evaluated(result.to_json() | {"png": str(png)},
                     f"{format_result(result)}\nconfusion matrix: {png}; figures: {png.with_suffix('.json')}")


def predict(model, images, top=1, out="predictions", batch_size=32, trusted=False):
    from ..serve.predict import predict_files
    return predict_files(model, images, top, out, batch_size=batch_size, trusted=trusted)


FAMILY = Family(name="classifier", title="classifier", description="a classifier (or segmentation) network", marks=(), spec_type=Spec, parse=parse, check=check, networks=networks,
                with_budget=with_budget, train=train, owns_run=owns_run, export=export, evaluate=evaluate,
                predict=predict, verbs_hint="use cnnbuild predict or evaluate on it")


class Training:
    """A classifier's part of the training session (train/session.py states the contract):
    one model, the loss and metrics read from its output (train/objective.py), Keras's fit or
    the strategy.run loop the plan names (train/loop.py), and model.keras at the end."""

    title = "classifier"
    strategies = None           # every strategy
    tf_options: dict = {}
    after = None                # nothing to say after an epoch but its line
    hint = ("lower train.optimizer.learning_rate (now {rate:g}), add a warm-up (train.schedule.warmup_epochs) or set "
            "train.optimizer.clipnorm")

    def __init__(self, spec, report):
        self.spec, self.data_spec, self.report = spec, spec, report
        self.labels = report.output
        self.hint = self.hint.format(rate=spec.train.optimizer.base_learning_rate)
        self.line = None        # Commit's own epoch line

    def precision(self, plan):
        from ..train.objective import precision_policy
        self.policy = precision_policy(self.spec.train.mixed_precision, plan.accelerator)
        return self.policy

    def build(self, keras, tf, plan, loaded, steps_per_epoch, policy):
        from ..assemble import build_model
        from ..augment import make_augment
        from ..train.objective import make_objective, make_optimizer, make_schedule
        from ..train.session import Parts
        section = self.spec.train
        model = build_model(self.spec, self.report)
        # the objective: logits or probabilities, as the check found the network's output (whatever the
        # spec's last entry is): Keras rescues from_logits=True on a softmax only in float32
        objective = make_objective(keras, self.spec, loaded.task, loaded.outputs, self.report.ends_in_probabilities)
        # augmentation in tf.data, or on the GPU inside the training step
        augment_on = section.augment_on
        if augment_on == "auto":
            augment_on = "device" if plan.accelerator == "gpu" else "data"
        augment = make_augment(self.spec.augment, self.spec.input, loaded.task, loaded.label_shape)
        # the schedule counts optimizer steps, so it needs the steps per epoch
        schedule = make_schedule(keras, section, steps_per_epoch, section.epochs)
        loop = plan.loop(keras, tf, plan, model, make_optimizer(keras, section, schedule), objective, section,
                         augment if augment_on == "device" else None, policy)
        self.model, self.loaded = model, loaded
        return Parts([model], [loop.optimizer], loop, schedule, augment=augment if augment_on == "data" else None,
                     dense_labels=objective.dense_labels,
                     metrics={"mixed_precision": policy, "augment_on": augment_on,
                              "loss_function": type(objective.loss).__name__, "from_logits": objective.from_logits})

    def folder_files(self, folder, loaded):
        from .. import runfolder
        if loaded.task == "classification":   # predict warns when a user's images differ from these
            from ..train.data import image_profile
            runfolder.write_json(folder / runfolder.PROFILE, image_profile(loaded.train))

    def header(self, loaded, plan, policy) -> str:
        return (f"{self.report.params:,} parameters; {plan.kind} strategy, {plan.replicas} "
                f"replica{'s' if plan.replicas > 1 else ''}{', ' + policy if policy != 'float32' else ''}")

    def started(self, pipeline, say):
        pass

    def finish(self, folder, history, say):
        """The best epoch's weights put back (restore_best), model.keras written."""
        final, restored = restore_best(folder, history, self.model, say)
        save_bare_model(self.spec, self.report, self.model, self.policy, folder)
        return {"final_row": final, "restored_best_epoch": restored}, lambda metrics: self.done(metrics, folder)

    @staticmethod
    def done(metrics, folder) -> str:
        from .. import runfolder
        summary = "  ".join(f"{k} {metrics[k]:.4f}" for k in metrics
                            if k.startswith("val_") and isinstance(metrics[k], float))
        return (f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, "
                f"{summary or 'loss ' + format(metrics['loss'], '.4f')}, {metrics['training_seconds']:.1f}s training, "
                f"{metrics['images_per_second'] or 0:,.0f} img/s → {folder / runfolder.MODEL}")

    def curves(self, rows):
        """Each metric per epoch, training and validation side by side."""
        names = [k for k in rows[-1] if not k.startswith("val_") and k not in ("epoch", "learning_rate", "seconds",
                                                                               "images_per_second")]
        return [(name, [(name, name)] + [(f"val_{name}", f"val_{name}")] * any(f"val_{name}" in row for row in rows))
                for name in names]


def restore_best(folder, history, model, say):
    """(the row the run ends with, the restored epoch or None): with restore_best, the best
    epoch's weights put back into `model` from its checkpoint (kept for this by prune)."""
    from .. import runfolder
    from ..train.checkpoints import DamagedCheckpoint, read_checkpoint
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


def save_bare_model(spec, report, model, policy, folder):
    """model.keras: the spec's model with the trained weights, in float32, with no optimizer
    and no augmentation — what export and predict load."""
    import keras

    from .. import runfolder
    from ..assemble import build_model
    from ..train.replicas import local_copies
    from ..train.session import save_model
    keras.mixed_precision.set_global_policy("float32")
    try:
        bare = build_model(spec, report)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    bare.set_weights([local_copies(v)[0] for v in model.weights])
    save_model(bare, folder / runfolder.MODEL)
