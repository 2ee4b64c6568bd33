"""`cnnbuild compare SPEC [SPEC…] [--variant NAME…|--variants all] [--epochs E] [--out DIR]`:
a row per spec (or per variant of each: `--variant` names them, `--variants all` takes every
one the spec declares) with its
parameters, multiply-adds, activation memory and receptive field — static and instant —
and, with --epochs, each spec trained E epochs on its own data (an ordinary run folder in
DIR/runs/NAME) for its validation accuracy and training images/s.

DIR/compare.csv holds the rows; DIR/compare.png (with --epochs) charts validation accuracy
against multiply-adds on a log scale, each point labelled, the Pareto front drawn — seed
001's EfficientNet chart, for the user's own data.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import runfolder
from .candidates import Figures, figures_of

CSV, PNG = "compare.csv", "compare.png"
COLUMNS = ("name", "spec", "params", "macs", "activation_bytes", "receptive_field", "val_accuracy",
           "images_per_second", "run")


@dataclass
class Row:
    figures: Figures
    spec: str
    val_accuracy: Optional[float] = None
    images_per_second: Optional[float] = None
    run: str = ""
    notes: list = field(default_factory=list)

    def record(self) -> dict:
        f = self.figures
        return {"name": f.name, "spec": self.spec, "params": f.params, "macs": f.macs,
                "activation_bytes": f.activation_bytes,
                "receptive_field": "×".join(map(str, f.receptive_field)) if f.receptive_field else "",
                "val_accuracy": self.val_accuracy, "images_per_second": self.images_per_second, "run": self.run}


def variants_of(path) -> list:
    """The names of a spec file's `variants:`, in the order written."""
    from ..parse import read_tree
    root = read_tree(path)
    node = root.value.get("variants") if root.is_map else None
    return list(node.value) if node is not None and node.is_map else []


def candidates(paths, variants=None) -> list:
    """(path, variant or None) pairs: each spec as it is, or in each variant asked for
    (`variants`: a list of names, or "all")."""
    from ..errors import UsageError
    pairs = []
    for path in paths:
        names = variants_of(path) if variants == "all" else list(variants or [])
        if variants == "all" and not names:
            raise UsageError(f"--variants all: {path} declares no variants:", "give specs with variants, or leave it out")
        pairs += [(str(path), name) for name in names] or [(str(path), None)]
    return pairs


def compare(paths, epochs: Optional[int] = None, out=None, stdout=None, variants=None) -> list:
    """The rows of `paths` (spec files; in each of `variants` when given), in order; each
    trained `epochs` epochs when given. Writes DIR/compare.csv (and compare.png with epochs)
    when `out` is given."""
    from .. import families
    from ..parse.overrides import given
    rows = []
    for path, variant in candidates(paths, variants):
        overrides = [given("train.epochs", epochs, "--epochs")] if epochs else []
        spec = families.resolve_spec(path, overrides, variant=variant)
        family = families.of_spec(spec)
        figures = figures_of(spec, family.check(spec, files_only=True))
        if variant:
            figures.name = f"{spec.name}:{variant}"
        row = Row(figures, str(path))
        rows.append(row)
        if not epochs or not figures.valid:
            row.notes += figures.errors[:1]
            continue
        folder = Path(out or "compare") / "runs" / _unique(figures.name.replace(":", "_"), rows)
        family, checked = families.checked_for_training(spec)
        metrics = family.train(spec, checked, out=folder, stdout=stdout or io.StringIO())
        row.run, row.images_per_second = str(folder), metrics.get("images_per_second")
        row.val_accuracy = metrics.get("val_accuracy", metrics.get("val_categorical_accuracy"))
        if row.val_accuracy is None:
            row.notes.append("no validation accuracy (a spec without validation data, or not a classifier)")
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_csv(rows, Path(out) / CSV)
        if epochs:
            draw_chart(rows, Path(out) / PNG)
    return rows


def _unique(name: str, rows) -> str:
    """A run folder's name: the spec's, numbered when two compared specs share it."""
    same = sum(1 for row in rows[:-1] if row.figures.name.replace(":", "_") == name)
    return name if not same else f"{name}_{same + 1}"


def write_csv(rows, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.record().items()})
    runfolder.atomic_write(path, buffer.getvalue())


def pareto_front(points) -> list:
    """The points no other point beats on both counts — fewer or equal multiply-adds and a
    higher or equal accuracy, one of them strictly — sorted by multiply-adds.

    >>> pareto_front([(10, 0.9), (20, 0.8), (30, 0.95), (5, 0.5)])
    [(5, 0.5), (10, 0.9), (30, 0.95)]
    """
    front, best = [], -math.inf
    for macs, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            front.append((macs, accuracy))
            best = accuracy
    return front


def draw_chart(rows, path: Path) -> None:
    """Validation accuracy against multiply-adds (log scale), each point labelled, the Pareto front drawn."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    points = [(row.figures.macs, row.val_accuracy, row.figures.name) for row in rows
              if row.val_accuracy is not None and row.figures.macs]
    figure = Figure(figsize=(7, 4.8), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter([p[0] for p in points], [p[1] for p in points], zorder=3)
    for macs, accuracy, name in points:
        axes.annotate(name, (macs, accuracy), textcoords="offset points", xytext=(5, 5), fontsize=9)
    front = pareto_front([(p[0], p[1]) for p in points])
    if len(front) > 1:
        axes.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:orange", alpha=0.8,
                  label="Pareto front")
        axes.legend(loc="lower right")
    axes.set_xscale("log")
    axes.set_xlabel("multiply-adds per image (log scale)")
    axes.set_ylabel("validation accuracy")
    axes.set_title("accuracy against compute")
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    runfolder.atomic_write(path, buffer.getvalue())


def format_rows(rows) -> str:
    """The table `cnnbuild compare` prints."""
    from ..check.report import count_text, human_bytes
    width = max([4] + [len(row.figures.name) for row in rows])
    lines = [f"{'name'.ljust(width)}  {'params':>12}  {'MACs':>9}  {'activations':>11}  {'RF':>9}  "
             f"{'val acc':>7}  {'img/s':>8}"]
    for row in rows:
        f = row.figures
        if not f.valid:
            lines.append(f"{f.name.ljust(width)}  invalid: {f.errors[0].splitlines()[0]}")
            continue
        rf = "×".join(map(str, f.receptive_field)) if f.receptive_field else ""
        accuracy = f"{row.val_accuracy:.4f}" if row.val_accuracy is not None else "—"
        rate = f"{row.images_per_second:,.0f}" if row.images_per_second else "—"
        lines.append(f"{f.name.ljust(width)}  {f.params:>12,}  {count_text(f.macs):>9}  "
                     f"{human_bytes(f.activation_bytes):>11}  {rf:>9}  {accuracy:>7}  {rate:>8}")
    return "\n".join(lines)
