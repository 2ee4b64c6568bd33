"""`cnnbuild evaluate RUN_DIR [--data SOURCE]`: accuracy, per-class precision and recall, and a
confusion matrix, printed and drawn as a PNG.

The images are the run's validation data, read and split exactly as training did (the run's
spec.yaml, `data.load_data` with the run's seed), or with `--data` every image of another
source (a class-folder directory, an .npz, digits, …). They go through training's pipeline
(`data.Pipeline`: the one `preprocess` function) and the trained model in inference mode.
For a segmentation model every pixel counts as one prediction.

Writes RUN_DIR/confusion_matrix.png and RUN_DIR/evaluation.json (or beside `--out FILE.png`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import runfolder
from ..errors import UsageError

PNG = "confusion_matrix.png"
BATCH = 256                 # images per inference batch: memory, not accuracy
ANNOTATE_UP_TO = 30         # classes; beyond this the cells are too small for numbers
PRINT_MATRIX_UP_TO = 20     # classes; beyond this the printed matrix is too wide to read


@dataclass
class Evaluation:
    run: str
    data: str
    classes: list
    confusion: list           # rows: true class, columns: predicted class
    unit: str = "images"      # or "pixels" for segmentation

    @property
    def total(self) -> int:
        return int(sum(map(sum, self.confusion)))

    @property
    def correct(self) -> int:
        return int(sum(self.confusion[i][i] for i in range(len(self.classes))))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def precision(self, k) -> float | None:
        predicted = sum(row[k] for row in self.confusion)
        return self.confusion[k][k] / predicted if predicted else None

    def recall(self, k) -> float | None:
        actual = sum(self.confusion[k])
        return self.confusion[k][k] / actual if actual else None

    def to_json(self) -> dict:
        return {"run": self.run, "data": self.data, "unit": self.unit, "count": self.total, "accuracy": self.accuracy,
                "classes": [{"class": name, "precision": self.precision(k), "recall": self.recall(k),
                             "support": sum(self.confusion[k])} for k, name in enumerate(self.classes)],
                "confusion_matrix": self.confusion}


def evaluate_run(run_dir, data: str | None = None) -> Evaluation:
    """Run the trained model over the run's validation data (or every image of `data`)."""
    import numpy as np

    from ..train.data import load_data
    from ..train.pipeline import Pipeline
    from .export import load_run
    run = load_run(run_dir)
    spec = _run_spec(run, data)
    output_shape = tuple(run.model.output_shape[1:])
    loaded = load_data(spec, output_shape)
    if data:
        part, label = loaded.train, f"{loaded.source}, all {loaded.train.count:,} images"
    elif loaded.validation is not None:
        part, label = loaded.validation, f"{loaded.source}, the run's {loaded.validation.count:,} validation images"
    else:
        raise UsageError(f"{run_dir}: the run has no validation data (data.validation_split: 0); "
                         "evaluate on other images with --data SOURCE (a class-folder directory, an .npz, …)")
    classes = _classes(run, loaded, data)
    pipeline = Pipeline(dataclasses.replace(loaded, validation=part, train=part), run.image_shape, BATCH, spec.train.seed,
                        cache=False)
    count = len(classes)
    confusion = np.zeros((count, count), dtype=np.int64)
    for images, labels in pipeline.validation():
        outputs = run.model(images, training=False)
        outputs = np.asarray(outputs)
        predicted = (outputs[..., 0] > 0.5).astype(np.int64) if outputs.shape[-1] == 1 else outputs.argmax(-1)
        truth = np.asarray(labels).reshape(predicted.shape).astype(np.int64)
        confusion += np.bincount(truth.ravel() * count + predicted.ravel(), minlength=count * count).reshape(count, count)
    unit = "pixels" if loaded.task == "segmentation" else "images"
    return Evaluation(str(run_dir), label, classes, confusion.tolist(), unit)


def _run_spec(run, data):
    """The run's resolved spec (its data section and seed), with `--data` replacing the source."""
    from ..errors import Invalid, SpecError
    from ..parse import Spec, load_spec
    path = runfolder.within(run.folder, runfolder.SPEC)
    if path.is_file():
        spec = load_spec(path)
    elif data:
        spec = Spec(name="run", input=run.image_shape, layers=())
    else:
        raise UsageError(f"{path}: missing; evaluate reads the run's data section from it (or give --data SOURCE)")
    if not data:
        return spec
    try:
        replaced = dataclasses.replace(spec.data, source=data, path=None, validation=None, validation_split=0.0)
    except Invalid as e:
        raise UsageError(f"--data {data}: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else "")) from None
    except SpecError as e:
        raise UsageError(f"--data {data}: {e}") from None
    return dataclasses.replace(spec, data=replaced)


def _classes(run, loaded, data) -> list:
    if len(loaded.classes) != len(run.classes):
        raise UsageError(f"{loaded.source} has {len(loaded.classes)} classes ({', '.join(map(str, loaded.classes[:12]))}"
                         f"{', …' if len(loaded.classes) > 12 else ''}) but the model was trained on {len(run.classes)}"
                         f" ({', '.join(run.classes[:12])}{', …' if len(run.classes) > 12 else ''})")
    if data and loaded.class_folders and list(map(str, loaded.classes)) != run.classes:
        raise UsageError(f"{loaded.source}: class folders {list(loaded.classes)} are not the run's classes {run.classes} "
                         "(same names, same order); rename the folders")
    return run.classes


def format_result(result: Evaluation) -> str:
    lines = [f"evaluated {result.run} on {result.data}",
             f"accuracy {result.accuracy:.4f} ({result.correct:,} of {result.total:,} {result.unit} right)", ""]
    width = max(5, *(len(c) for c in result.classes))
    lines.append(f"{'class'.ljust(width)}  precision  recall  {result.unit}")
    show = (lambda v: "—" if v is None else f"{v:.3f}")
    for k, name in enumerate(result.classes):
        lines.append(f"{name.ljust(width)}  {show(result.precision(k)):>9}  {show(result.recall(k)):>6}  "
                     f"{sum(result.confusion[k]):>{len(result.unit)},}")
    lines.append("(precision: of those predicted as the class, the share right; recall: of the class, the share found; "
                 "— where there were none)")
    if len(result.classes) <= PRINT_MATRIX_UP_TO:
        names = max(len(c) for c in result.classes) + 1 if len(result.classes) <= 10 else 6
        cell = max(5, names, len(f"{max(map(max, result.confusion)):,}") + 1)
        lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
                  " " * width + "".join(name[:cell - 1].rjust(cell) for name in result.classes)]
        for name, row in zip(result.classes, result.confusion):
            lines.append(name.ljust(width) + "".join(f"{v:,}".rjust(cell) for v in row))
    return "\n".join(lines)


def draw_confusion(result: Evaluation, path) -> None:
    """The confusion matrix as a PNG: counts in the cells, colour by the share of the true
    class (so a small class's mistakes show as clearly as a big one's)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    matrix = np.asarray(result.confusion)
    count = len(result.classes)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(24.0, max(5.5, 0.55 * count + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    asked = result.unit == "samples"      # a GAN's samples (evaluate_gan): rows are the class asked for
    truth = "class asked for" if asked else "true class"
    bar.set_label(f"share of the {truth}")
    ax.set_xticks(range(count), labels=result.classes, rotation=45 if count > 4 else 0, ha="right" if count > 4 else "center")
    ax.set_yticks(range(count), labels=result.classes)
    ax.set_xlabel("classified as" if asked else "predicted class")
    ax.set_ylabel(truth)
    if count <= ANNOTATE_UP_TO:
        size = max(6, min(12, 160 // max(count, 1)))
        for i in range(count):
            for j in range(count):
                if matrix[i, j] or i == j:
                    ax.text(j, i, f"{matrix[i, j]:,}", ha="center", va="center", fontsize=size,
                            color="white" if shares[i, j] > 0.55 else "black")
    # titled as training_curves.png is: "RUN — what: data" (train.session.figure_title)
    ax.set_title(f"{Path(result.run).resolve().name} — {'samples classified' if asked else 'confusion matrix'}: "
                 f"{result.data}\n{'classified as asked' if asked else 'accuracy'} "
                 f"{result.accuracy:.1%} ({result.correct:,} of {result.total:,} {result.unit})", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    runfolder.atomic_write(path, buffer.getvalue())
