"""`cnnbuild evaluate GAN_RUN --classifier RUN_OR_EXPORT`: a GAN's samples, classified.

The Inception network behind FID and the Inception score is not available offline, so the
quality figure is a classifier trained by cnnbuild on the same data. A conditional GAN is
asked for each class in turn (count / K samples each) and scored by the share of samples
the classifier puts in the class asked for; any GAN is also scored by class coverage: the
entropy of the classifier's predicted-class histogram, in bits and as a share of log2 K
(1.0: every class equally often; 0: one class only, the seeds' mode collapse).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ... import runfolder
from ...errors import UsageError
from ...serve.evaluate import BATCH, Evaluation

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


def evaluate_gan(run_dir, classifier, count: int = 1000, seed: int = 0, trusted: bool = False) -> GanEvaluation:
    """Sample `count` images from a GAN run (or its export) and classify them with a cnnbuild
    classifier (a run folder or an export). The samples are fed as any uint8 images are: the
    classifier's own preprocessing resizes them to its input size, converts the channels and
    scales the pixels as its training did."""
    import numpy as np

    from .sample import check_seed, draw_samples, open_generator
    if count < 1:
        raise UsageError(f"--n {count}: must be at least 1 (the number of samples to classify)")
    check_seed(seed)
    generator = open_generator(run_dir, trusted)
    info = generator.info
    names, classify = open_classifier(classifier, trusted)
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


def open_classifier(path, trusted: bool = False):
    """(class names, classify(uint8 images) → predicted class ids) of a classifier run (its
    model.keras through cnnbuild.preprocess, as export verifies against) or an export."""
    import numpy as np

    from ...serve.export import load_run, open_export, reference
    from .sample import GAN_INFO
    from ...serve.predict import convert_channels
    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"--classifier {path}: no such run or export folder; train a classifier on the same data, "
                         "e.g. cnnbuild train specs/lenet5.yaml --out runs/lenet5")
    if folder.is_dir() and (folder / GAN_INFO).is_file():
        raise UsageError(f"--classifier {path}: a GAN run (it has {GAN_INFO}), not a classifier; give a classifier run "
                         "or export trained on the same data")
    if folder.is_dir() and (folder / runfolder.MODEL).is_file():
        run = load_run(folder)

        def classify(images):
            return _top(np.asarray(reference(run, images)), path)
        return run.classes, classify
    runner = open_export(folder, trusted)

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
