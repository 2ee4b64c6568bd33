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
    path = run.folder / runfolder.SPEC
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
    # titled as training_curves.png is: "RUN — what: data" (train.run.figure_title)
    ax.set_title(f"{Path(result.run).resolve().name} — {'samples classified' if asked else 'confusion matrix'}: "
                 f"{result.data}\n{'classified as asked' if asked else 'accuracy'} "
                 f"{result.accuracy:.1%} ({result.correct:,} of {result.total:,} {result.unit})", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    runfolder.atomic_write(path, buffer.getvalue())


# ── a GAN's samples, classified: `cnnbuild evaluate GAN_RUN --classifier RUN_OR_EXPORT` ─────
#
# The Inception network behind FID and the Inception score is not available offline, so the
# quality figure is a classifier trained by cnnbuild on the same data. A conditional GAN is
# asked for each class in turn (count / K samples each) and scored by the share of samples
# the classifier puts in the class asked for; any GAN is also scored by class coverage: the
# entropy of the classifier's predicted-class histogram, in bits and as a share of log2 K
# (1.0: every class equally often; 0: one class only, the seeds' mode collapse).

SAMPLE_FIGURES = "sample_quality.png"      # (and .json beside it) in the GAN run folder


@dataclass
class GanEvaluation:
    run: str
    classifier: str
    classes: list              # the classifier's class names
    counts: list               # how many samples the classifier put in each of its classes
    seed: int
    asked: Evaluation | None = None   # conditional: rows the class asked for, columns the class found
    columns: list = dataclasses.field(default_factory=list)   # the classifier's classes in asked's column order
    matched: str = ""          # how the GAN's classes were matched to the classifier's ("names" or "index")

    @property
    def total(self) -> int:
        return int(sum(self.counts))

    @property
    def entropy(self) -> float:
        """Of the predicted-class histogram, in bits."""
        import math
        return float(-sum(c / self.total * math.log2(c / self.total) for c in self.counts if c)) if self.total else 0.0

    @property
    def coverage(self) -> float:
        """The entropy as a share of the most it can be, log2 K."""
        import math
        return self.entropy / math.log2(len(self.classes)) if len(self.classes) > 1 else 1.0

    @property
    def appear(self) -> int:
        return sum(1 for c in self.counts if c)

    def to_json(self) -> dict:
        out = {"run": self.run, "classifier": self.classifier, "samples": self.total, "seed": self.seed,
               "conditional": self.asked is not None,
               "coverage": {"entropy_bits": self.entropy, "max_bits": _log2(len(self.classes)),
                            "fraction": self.coverage, "classes_appearing": self.appear, "classes": len(self.classes),
                            "counts": dict(zip(self.classes, self.counts))}}
        if self.asked is not None:
            out["conditional_accuracy"] = self.asked.accuracy
            out["matched_by"] = self.matched
            out["per_class"] = [{"class": name, "asked": sum(self.asked.confusion[k]),
                                 "classified_as_asked": self.asked.recall(k)}
                                for k, name in enumerate(self.asked.classes)]
            out["confusion_matrix"] = {"rows (asked for)": self.asked.classes, "columns (classified as)": self.columns,
                                       "counts": self.asked.confusion}
        return out


def _log2(n: int) -> float:
    import math
    return math.log2(n) if n > 1 else 0.0


def evaluate_gan(run_dir, classifier, count: int = 1000, seed: int = 0) -> GanEvaluation:
    """Sample `count` images from a GAN run (or its export) and classify them with a cnnbuild
    classifier (a run folder or an export). The samples are fed as any uint8 images are: the
    classifier's own preprocessing resizes them to its input size, converts the channels and
    scales the pixels as its training did."""
    import numpy as np

    from .sample import check_seed, draw_samples, open_generator
    if count < 1:
        raise UsageError(f"--n {count}: must be at least 1 (the number of samples to classify)")
    check_seed(seed)
    generator = open_generator(run_dir)
    info = generator.info
    names, classify = open_classifier(classifier)
    mapping, matched = _match_classes(info, names, classifier) if info.conditional else (None, "")
    per_class = -(-count // len(info.classes)) if info.conditional else count
    samples = draw_samples(generator, count if not info.conditional else per_class * len(info.classes), None, seed)
    predicted = np.concatenate([classify(samples.images[i:i + BATCH]) for i in range(0, len(samples.images), BATCH)])
    counts = np.bincount(predicted, minlength=len(names)).tolist()
    asked = None
    if info.conditional:
        confusion = np.zeros((len(info.classes), len(names)), np.int64)
        np.add.at(confusion, (samples.labels, predicted), 1)
        # columns in the GAN's class order, so the diagonal is "classified as asked" (Evaluation's accuracy)
        order = mapping + [k for k in range(len(names)) if k not in mapping]
        asked = Evaluation(str(run_dir), f"{len(samples.images):,} samples, {per_class:,} asked for each class",
                           list(info.classes), confusion[:, order].tolist(), unit="samples")
    return GanEvaluation(str(run_dir), str(classifier), names, counts, seed, asked=asked, matched=matched,
                         columns=[names[k] for k in order] if asked is not None else [])


def open_classifier(path):
    """(class names, classify(uint8 images) → predicted class ids) of a classifier run (its
    model.keras through cnnbuild.preprocess, as export verifies against) or an export."""
    import numpy as np

    from .export import GAN_INFO, load_run, open_export, reference
    from .predict import convert_channels
    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"--classifier {path}: no such run or export folder; train a classifier on the same data, "
                         "e.g. cnnbuild train specs/lenet5.yaml --out runs/lenet5")
    if folder.is_dir() and ((folder / runfolder.MODEL).is_file() or (folder / GAN_INFO).is_file()):
        run = load_run(folder)     # (which refuses a GAN run, naming it)

        def classify(images):
            return _top(np.asarray(reference(run, images)), path)
        return run.classes, classify
    runner = open_export(folder)

    def classify_export(images):
        if runner.channels is not None and images.shape[-1] != runner.channels:
            images = convert_channels(images, runner.channels)
        return _top(runner(images)[0], path)
    return runner.classes, classify_export


def _top(probabilities, path):
    if probabilities.ndim != 2 or probabilities.shape[-1] < 2:
        raise UsageError(f"--classifier {path}: gives outputs of shape {list(probabilities.shape[1:])}; scoring samples "
                         "needs an image classifier with one probability per class")
    return probabilities.argmax(-1)


def _match_classes(info, names, classifier):
    """Which classifier class each of the GAN's classes is: by name when every name is found,
    else by index when the counts agree (digits named 0 … 9 in one and zero … nine in the other)."""
    if all(name in names for name in info.classes):
        return [names.index(name) for name in info.classes], "names"
    if len(names) == len(info.classes):
        return list(range(len(names))), "index"
    raise UsageError(f"--classifier {classifier}: knows {len(names)} classes ({', '.join(names[:12])}"
                     f"{', …' if len(names) > 12 else ''}) and not all of the GAN's {len(info.classes)} "
                     f"({', '.join(info.classes[:12])}{', …' if len(info.classes) > 12 else ''}); train it on the "
                     "data the GAN was trained on")


def format_gan_result(result: GanEvaluation) -> str:
    kind = "conditional" if result.asked is not None else "unconditional"
    lines = [f"evaluated {result.run} ({kind}, {result.total:,} samples, seed {result.seed}) with the classifier "
             f"{result.classifier} ({len(result.classes)} classes)"]
    if result.asked is not None:
        asked = result.asked
        lines.append(f"classified as the class asked for: {asked.accuracy:.4f} ({asked.correct:,} of {asked.total:,}; "
                     f"chance {1 / len(result.classes):.3f})" + ("; classes matched by index, their names differ"
                                                                 if result.matched == "index" else ""))
        width = max(5, *(len(c) for c in asked.classes))
        lines.append(f"{'class'.ljust(width)}  asked  classified as asked")
        for k, name in enumerate(asked.classes):
            lines.append(f"{name.ljust(width)}  {sum(asked.confusion[k]):>5,}  {asked.recall(k):.3f}")
    lines.append(f"class coverage: entropy of the predicted classes {result.entropy:.3f} bits of "
                 f"log2 {len(result.classes)} = {_log2(len(result.classes)):.3f} ({result.coverage:.3f}); "
                 f"{result.appear} of {len(result.classes)} classes appear")
    if result.asked is None:
        width = max(5, *(len(c) for c in result.classes))
        lines.append(f"{'class'.ljust(width)}  samples  share")
        for name, n in zip(result.classes, result.counts):
            lines.append(f"{name.ljust(width)}  {n:>7,}  {n / result.total:.3f}")
    return "\n".join(lines)
