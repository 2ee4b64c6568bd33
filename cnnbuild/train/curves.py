"""training_curves.png: one panel per quantity, values per epoch, written atomically.

A classifier run plots each metric beside its validation twin (families/classifier.py); a GAN run plots D and
G loss together, D(x) beside D(G(z)), and the samples' spread (families/gan/training.py). Both describe their
panels as data and this draws them.
"""
from __future__ import annotations

import io

from .. import runfolder


def write_curves(rows: list[dict], title: str, folder, panels) -> None:
    """`panels`: (panel title, ((history key, legend label), …)) pairs; a key missing from a
    row is a gap in its line."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(4.5 * len(panels), 3.6), dpi=100)
    for i, (name, curves) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for key, label in curves:
            axes.plot(epochs, [row.get(key, float("nan")) for row in rows], marker=".", label=label)
        axes.set_xlabel("epoch")
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    runfolder.atomic_write(folder / runfolder.CURVES, buffer.getvalue())
