"""Classify image files with an export: `cnnbuild predict EXPORT_OR_RUN_DIR IMAGE... [--top K] [--json]`.

Only the export is used (a SavedModel by default, or a .keras / ONNX / TFLite export folder):
the files are decoded as training decodes them (`data.decode_image`) and passed as raw
uint8 pixels of their own size and channels; the channel conversion, resize and scaling that
training used happen inside the exported graph (for TFLite, which takes fixed channels,
the channel conversion happens here, with training's formulas). Given a run folder, predict uses its
`export/savedmodel` when that was exported from the run's current model.keras, else it
exports (and verifies) to a temporary folder first.

A file that cannot be read gets an error naming it and the others are still predicted; the
exit status is then 2.
"""
from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .. import runfolder
from ..errors import UsageError


@dataclass
class Prediction:
    file: str
    top: list = field(default_factory=list)     # [(class name, probability)], best first
    error: str | None = None

    def to_json(self) -> dict:
        best = self.top[0] if self.top else (None, None)
        out = {"file": self.file, "class": best[0], "probability": best[1],
               "top": [{"class": name, "probability": p} for name, p in self.top]}
        return out | ({"error": self.error} if self.error else {})


class ImageError(Exception):
    """One file could not be read as an image."""


def predict_files(model_path, files, top: int = 1) -> list[Prediction]:
    """Predict each file; unreadable files get a Prediction with `error` set."""
    from .export import open_export
    with ExitStack() as stack:
        export = resolve_export(model_path, stack)
        runner = open_export(export)
        classes = runner.classes
        predictions, batches = [], {}
        for name in files:
            prediction = Prediction(str(name))
            predictions.append(prediction)
            try:
                image = read_image(name, runner.channels, runner.training_channels)
            except ImageError as e:
                prediction.error = str(e)
                continue
            batches.setdefault(image.shape, []).append((prediction, image))
        import numpy as np
        for group in batches.values():
            probabilities, _ = runner(np.stack([image for _, image in group]))
            if probabilities.ndim != 2:
                raise UsageError(f"{export}: the model predicts a {probabilities.shape[1:-1]} map of classes per image "
                                 "(segmentation); predict names one class per image")
            names = classes if len(classes) == probabilities.shape[-1] else [str(i) for i in range(probabilities.shape[-1])]
            for (prediction, _), row in zip(group, probabilities):
                best = np.argsort(-row, kind="stable")[:top]
                prediction.top = [(names[i], round(float(row[i]), 6)) for i in best]
    return predictions


def resolve_export(path, stack: ExitStack) -> Path:
    """An export folder as given; for a run folder its up-to-date SavedModel export, or a
    fresh verified one in a temporary folder (removed when `stack` closes)."""
    from . import export
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such export or run folder; export a run with `cnnbuild export RUN_DIR`")
    if not (path.is_dir() and (path / runfolder.MODEL).is_file() and not (path / export.MANIFEST).is_file()):
        return path
    saved = export.default_destination(path, "savedmodel")
    if (saved / export.MANIFEST).is_file():
        try:
            current = runfolder.read_json(saved / export.MANIFEST).get("source_fingerprint") == export.fingerprint(path)
        except (OSError, ValueError):
            current = False
        if current:
            return saved
        print(f"note: {saved} was exported from an earlier {runfolder.MODEL}; exporting the current one to a "
              f"temporary folder (`cnnbuild export {path}` keeps one)", file=sys.stderr)
    else:
        print(f"note: {path} has no export yet; exporting to a temporary folder (`cnnbuild export {path}` keeps one)",
              file=sys.stderr)
    temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnbuild-predict-")))
    export.export_run(path, temporary / "savedmodel")
    return temporary / "savedmodel"


def read_image(path, channels: int | None = None, training_channels: int | None = None):
    """A png / jpg / bmp / gif file → uint8 [height, width, channels], decoded by training's own
    decoder (`data.decode_image`: a GIF's first frame, 16-bit PNGs scaled to 8 bits).

    `channels` None keeps the file's channels (the export converts them, as training did);
    a number converts here, for exports that take fixed channels (TFLite), with training's
    formulas rounded to whole pixel values. Raises ImageError naming the file."""
    import numpy as np

    from ..train.data import decode_image, unreadable_image
    from ..preprocess import channels_fit
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty")
    import tensorflow as tf
    try:
        pixels = decode_image(str(path)).numpy()
    except (tf.errors.OpError, ValueError) as e:
        raise ImageError(f"{path}: {unreadable_image(e)}") from None
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ImageError(f"{path}: the image is empty ({pixels.shape[1]}×{pixels.shape[0]} pixels)")
    have, wanted = pixels.shape[-1], training_channels or channels
    if wanted and not channels_fit(have, wanted):
        raise ImageError(f"{path}: has {have} channels{' (gray + alpha)' if have == 2 else ''}; the model takes "
                         f"{wanted} and can use files with 1 (grayscale), 3 (RGB) or 4 (RGBA) channels")
    if channels and have != channels:
        pixels = convert_channels(pixels, channels)
    return pixels


def convert_channels(pixels, channels: int):
    """Training's channel conversion (preprocess: tf.image's grayscale_to_rgb, alpha dropped,
    rgb_to_grayscale's weights 0.2989, 0.5870, 0.1140) rounded to uint8."""
    import numpy as np
    have = pixels.shape[-1]
    if have == 1:
        return np.repeat(pixels, 3, axis=-1) if channels == 3 else pixels
    rgb = pixels[..., :3]
    if channels == 3:
        return rgb
    gray = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    return np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None]
