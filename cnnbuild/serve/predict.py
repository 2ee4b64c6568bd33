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
    # a segmentation model's answer: the mask (class number per pixel) and a colour overlay,
    # both PNG files at the image's own size, and each class's share of the pixels, largest first
    mask: str | None = None
    overlay: str | None = None
    pixels: list = field(default_factory=list)  # [(class name, share of the pixels)]

    def to_json(self) -> dict:
        if self.mask is not None:
            return {"file": self.file, "mask": self.mask, "overlay": self.overlay,
                    "pixels": [{"class": name, "share": share} for name, share in self.pixels]}
        best = self.top[0] if self.top else (None, None)
        out = {"file": self.file, "class": best[0], "probability": best[1],
               "top": [{"class": name, "probability": p} for name, p in self.top]}
        return out | ({"error": self.error} if self.error else {})

    def text(self) -> str:
        if self.mask is not None:
            shares = ", ".join(f"{name} {share:.1%}" for name, share in self.pixels)
            return f"{self.file}: mask {self.mask}, overlay {self.overlay}; {shares}"
        return f"{self.file}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in self.top)


class ImageError(Exception):
    """One file could not be read as an image."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def expand_images(names) -> list[str]:
    """Files as given; a folder → the image files inside it, at any depth; a glob pattern
    (`scans/*.png`, `scans/**/*.jpg`) that is no file's name → its matches. Each in sorted
    order. A folder or pattern with no image is kept, to be reported as unreadable by name.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.PNG", "notes.txt", "sub/c.jpg"):
    ...     (root / name).parent.mkdir(exist_ok=True); _ = (root / name).write_bytes(b"")
    >>> [pathlib.Path(p).relative_to(root).as_posix() for p in expand_images([root, f"{root}/*.png"])]
    ['a.PNG', 'b.png', 'sub/c.jpg', 'b.png']
    """
    import glob
    found = []
    for name in map(str, names):
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            found += [str(p) for p in inside] or [name]
        elif not path.exists() and glob.has_magic(name):
            found += sorted(glob.glob(name, recursive=True)) or [name]
        else:
            found.append(name)
    return found


def predict_files(model_path, files, top: int = 1, out="predictions", warn=None, batch_size: int = 32,
                  trusted: bool = False) -> list[Prediction]:
    """Predict each file (folders and glob patterns expanded: `expand_images`), `batch_size`
    images of one size at a time, so memory stays bounded however many files are given;
    unreadable files get a Prediction with `error` set. A segmentation
    model's masks and overlays are written to the folder `out`. `warn(text)` is told, once
    per kind, of files that differ from the training images in a way that matters (default:
    printed to standard error). A SavedModel runs only when its graph holds inference ops alone
    (serve/allowlist.py) or the user `trusted` it (--trust-model)."""
    import numpy as np

    from .export import open_export
    with ExitStack() as stack:
        export = resolve_export(model_path, stack)
        runner = open_export(export, trusted)
        classes = runner.classes
        profile = runner.manifest.get("input", {}).get("training_images") or {}
        predictions, batches, unlike, written = [], {}, {}, set()

        def run(group):
            probabilities, _ = runner(np.stack([image for _, image in group]))
            names = classes if len(classes) == probabilities.shape[-1] else [str(i) for i in range(probabilities.shape[-1])]
            for (prediction, image), answer in zip(group, probabilities):
                if answer.ndim == 3:      # [height, width, classes]: a class per pixel
                    write_masks(prediction, image, answer, names, Path(out), written)
                else:
                    best = np.argsort(-answer, kind="stable")[:top]
                    prediction.top = [(names[i], round(float(answer[i]), 6)) for i in best]

        for name in expand_images(files):
            prediction = Prediction(str(name))
            predictions.append(prediction)
            try:
                image = read_image(name, runner.channels, runner.training_channels, unlike=(profile, unlike))
            except ImageError as e:
                prediction.error = str(e)
                continue
            group = batches.setdefault(image.shape, [])
            group.append((prediction, image))
            if len(group) >= batch_size:
                run(group)
                group.clear()
        for group in batches.values():
            if group:
                run(group)
        for text in unlike_training(profile, unlike):
            (warn or _to_stderr)(text)
    return predictions


# colours for the overlay, one per class after the first (Tableau 10; class 0 is usually the
# background and stays uncoloured when it is named so)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
OVERLAY_ALPHA = 0.5


def write_masks(prediction: Prediction, image, probabilities, names, folder: Path, written: set) -> None:
    """The class map at the image's own size (nearest neighbour, so every pixel holds a class
    number) as `NAME.mask.png`, and the image with each class's colour laid over it as
    `NAME.overlay.png`, in `folder`."""
    import io

    import numpy as np
    from PIL import Image
    classes = np.argmax(probabilities, axis=-1).astype(np.uint8)
    height, width = image.shape[:2]
    mask = np.asarray(Image.fromarray(classes).resize((width, height), Image.NEAREST))
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    colours = np.array([(0, 0, 0) if i == 0 and names[0] == "background" else PALETTE[(i - 1) % len(PALETTE)]
                        for i in range(len(names))], np.float64)
    coloured = (mask > 0) | (names[0] != "background")
    overlay = rgb.astype(np.float64)
    overlay[coloured] = (1 - OVERLAY_ALPHA) * overlay[coloured] + OVERLAY_ALPHA * colours[mask[coloured]]
    stem = Path(prediction.file).stem
    for n in range(len(written) + 1):     # two files of one name from different folders: number them
        name = stem if n == 0 else f"{stem}-{n}"
        if name not in written:
            break
    written.add(name)
    for suffix, pixels in (("mask", mask), ("overlay", np.round(overlay).astype(np.uint8))):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        runfolder.atomic_write(folder / f"{name}.{suffix}.png", buffer.getvalue())
    prediction.mask, prediction.overlay = str(folder / f"{name}.mask.png"), str(folder / f"{name}.overlay.png")
    counts = np.bincount(mask.ravel(), minlength=len(names)) / mask.size
    prediction.pixels = [(names[i], round(float(counts[i]), 6)) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]


def resolve_export(path, stack: ExitStack) -> Path:
    """An export folder as given; for a run folder its up-to-date SavedModel export, or a
    fresh verified one in a temporary folder (removed when `stack` closes)."""
    from . import export
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such export or run folder; export a run with `cnnbuild export RUN_DIR`")
    if path.is_file() and path.name == runfolder.MODEL and not (path.parent / export.MANIFEST).is_file():
        path = path.parent      # a run's model.keras: predict with the run, exported as a run is
    if not (path.is_dir() and (path / runfolder.MODEL).is_file() and not (path / export.MANIFEST).is_file()):
        return path
    saved = export.default_destination(path, "savedmodel")
    runfolder.within(path, saved.relative_to(path))
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


def read_image(path, channels: int | None = None, training_channels: int | None = None, unlike=None):
    """A png / jpg / bmp / gif file → uint8 [height, width, channels], decoded by training's own
    decoder (`sources.images.decode_image`: a GIF's first frame, 16-bit PNGs scaled to 8 bits).

    `channels` None keeps the file's channels (the export converts them, as training did);
    a number converts here, for exports that take fixed channels (TFLite), with training's
    formulas rounded to whole pixel values. Raises ImageError naming the file."""
    from ..sources.images import decode_image, unreadable_image
    from ..preprocess import channels_fit
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder with no png, jpg, bmp or gif file in it")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty")
    _refuse_huge(path)
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
    if unlike is not None:      # (the training images' profile, {difference: [files]}) to note differences in
        for difference in differences(unlike[0], pixels):
            unlike[1].setdefault(difference, []).append(str(path))
    if channels and have != channels:
        pixels = convert_channels(pixels, channels)
    return pixels


SIZE_RATIO = 8      # an image 8× larger or smaller than the training images, on either side, is "very different"


def differences(profile: dict, pixels) -> list[str]:
    """How a file's pixels differ from the training images in a way that changes what the
    model sees: the opposite polarity (dark ink on light paper for a model trained on light
    strokes on black, as the digits are), a very different size, a channel conversion."""
    from ..preprocess import background, polarity
    if not profile:
        return []
    found = []
    trained, own = profile.get("polarity"), polarity(background(pixels))
    if trained and own and own != trained:
        found.append("polarity")
    height, width = pixels.shape[:2]
    if profile.get("height") and profile.get("width"):
        ratio = max(height / profile["height"], profile["height"] / height, width / profile["width"], profile["width"] / width)
        if ratio >= SIZE_RATIO:
            found.append("size")
    if profile.get("channels") and pixels.shape[-1] != profile["channels"]:
        found.append("channels")
    return found


def unlike_training(profile: dict, unlike: dict) -> list[str]:
    """One warning per kind of difference, naming the files (the first three, then a count)."""
    def files(names):
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    size = f"{profile.get('height')}×{profile.get('width')}"
    gray = {1: "grayscale", 3: "RGB", 4: "RGBA"}
    texts = {
        "polarity": lambda names: f"{files(names)}: {'dark on light' if profile['polarity'] == 'light on dark' else 'light on dark'}"
                                  f", but the model was trained on images {profile['polarity']} (their background is "
                                  f"{profile['background']:.0f} of 255); it will likely misread them: invert them first",
        "size": lambda names: f"{files(names)}: a very different size from the training images (typically {size}); "
                              "the model sees them resized to its input, so crop them to the subject, filling the frame "
                              "as the training images do",
        "channels": lambda names: f"{files(names)}: converted to {gray.get(profile['channels'], profile['channels'])} "
                                  "as the training images are; colour that mattered is lost",
    }
    return [f"warning: {texts[kind](names)}" for kind, names in unlike.items()]


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


MAX_PIXELS = 50_000_000   # a 50-megapixel photo; decoded as float32 RGB it is already 600 MB


def _refuse_huge(path: Path) -> None:
    """Refuse an image too large to decode, from its header alone (PIL reads no pixels to
    open a file): a 20000×20000 single-colour PNG is 380 KiB on disk and 1.1 GiB decoded."""
    import warnings

    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:   # PIL's own limit (2 × 89 megapixels) says as much
        raise ImageError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels, more than the "
                         f"{MAX_PIXELS / 1e6:,.0f} megapixels predict decodes; resize it first") from None
    except Exception:   # not an image PIL knows: the decoder below names the problem
        return
    if width * height > MAX_PIXELS:
        raise ImageError(f"{path}: {width}×{height} = {width * height / 1e6:,.0f} megapixels, more than the "
                         f"{MAX_PIXELS / 1e6:,.0f} megapixels predict decodes; resize it first (the model reads "
                         f"it at its training size anyway)")


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
