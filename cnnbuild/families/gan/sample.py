"""`cnnbuild sample RUN [--n 64] [--class K] [--seed S] [--out grid.png | DIR]`: pictures from a
trained GAN's generator.

RUN is a GAN run folder (gan.json and generator.keras, written by `cnnbuild train GAN_SPEC`)
or a GAN export folder (`cnnbuild export GAN_RUN`: a SavedModel with gan.json beside it).
The noise is drawn from a standard normal, as in training, by numpy's generator seeded with
--seed, so one seed gives the same pictures every time. A conditional run samples the class
asked for (--class, an index or a name), or without --class every class, one row each; an
unconditional run refuses --class.

The generator's pixels (in gan.json's pixel_range, [-1, 1] after tanh) become uint8 by the
run-folder contract, round((x − lo) / (hi − lo) · 255) clipped to 0…255: the same rule the
exported SavedModel applies inside its graph. The output is one PNG grid (views/grid.py;
cells enlarged to at least 32 pixels), or, when --out is a folder, one PNG per sample at the
generator's own size, `0007_class3.png`, each written atomically.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from ... import runfolder
from ...errors import UsageError, first_line
from ...serve.export import MANIFEST, SIGNATURE, _quiet

GAN_INFO = "gan.json"            # what a GAN run (and its export) makes: noise, classes, image shape, pixel range
GENERATOR_KIND = "gan_generator"  # export.json's "kind" for a generator export

GENERATOR = "generator.keras"
DEFAULT_OUT = "sample.png"
BATCH = 256          # samples per generator call: memory, not quality


@dataclass(frozen=True)
class GanInfo:
    """gan.json: what a GAN run (or its export) makes."""

    name: str
    noise: int
    conditional: bool
    classes: tuple          # K class names in label order; () when unconditional
    image_shape: tuple      # (H, W, C)
    pixel_range: tuple      # (lo, hi) of the generator's output
    loss: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "noise": self.noise, "conditional": self.conditional, "classes": list(self.classes),
                "image_shape": list(self.image_shape), "pixel_range": list(self.pixel_range), "loss": self.loss}


def read_info(path: Path) -> GanInfo:
    """Read and check gan.json; a damaged one is named with what is wrong."""
    try:
        value = runfolder.read_json(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not readable JSON ({first_line(e)}); train the GAN again to rewrite it") from None

    def bad(what):
        return UsageError(f"{path}: {what}; the run folder is damaged: train the GAN again to rewrite it")
    if not isinstance(value, dict):
        raise bad("expected an object with noise, conditional, classes, image_shape and pixel_range")
    noise, shape, pixels, classes = (value.get(key) for key in ("noise", "image_shape", "pixel_range", "classes"))
    if not isinstance(noise, int) or isinstance(noise, bool) or noise < 1:
        raise bad(f"'noise' should be the noise length, a whole number ≥ 1, not {noise!r}")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise bad(f"'image_shape' should be [height, width, channels], not {shape!r}")
    if not (isinstance(pixels, list) and len(pixels) == 2 and all(isinstance(v, (int, float)) for v in pixels)
            and pixels[0] < pixels[1]):
        raise bad(f"'pixel_range' should be [low, high] with low < high, not {pixels!r}")
    if not isinstance(classes, list) or not all(isinstance(c, (str, int)) for c in classes):
        raise bad(f"'classes' should list the class names, not {classes!r}")
    conditional = bool(value.get("conditional"))
    if conditional and not classes:
        raise bad("a conditional GAN lists its classes, but 'classes' is empty")
    return GanInfo(str(value.get("name", path.parent.name)), noise, conditional,
                   tuple(str(c) for c in classes) if conditional else (), tuple(shape),
                   (float(pixels[0]), float(pixels[1])), str(value.get("loss", "")))


def to_uint8(pixels, pixel_range):
    """The generator's pixels → uint8 by the run-folder contract.

    >>> import numpy as np
    >>> to_uint8(np.array([-1.0, -0.5, 0.0, 1.0, 1.7]), (-1, 1)).tolist()
    [0, 64, 128, 255, 255]
    """
    import numpy as np
    lo, hi = pixel_range
    scaled = (np.asarray(pixels, np.float32) - np.float32(lo)) / np.float32(hi - lo) * np.float32(255)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def check_seed(seed: int) -> None:
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be 0 or more (numpy's generator takes whole numbers ≥ 0)")


def noise_batch(count: int, size: int, seed: int):
    """The noise z for `count` samples: a standard normal, as training draws it."""
    import numpy as np
    return np.random.default_rng(seed).standard_normal((count, size)).astype(np.float32)


# ── the generator, from a run folder or an export ──────────────────────────────────────────

class Generator:
    """A GAN's generator loaded for sampling: call it on noise float32 [n, noise] (and labels
    int [n] when conditional) to get uint8 images [n, H, W, C]."""

    def __init__(self, folder: Path, info: GanInfo, source: str):
        self.folder, self.info, self.source = folder, info, source

    def __call__(self, noise, labels=None):
        import numpy as np
        if self.info.conditional and labels is None:
            raise ValueError("a conditional generator needs a label per sample")
        parts = [self._images(noise[i:i + BATCH], None if labels is None else labels[i:i + BATCH])
                 for i in range(0, len(noise), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.info.image_shape), np.uint8)


class KerasGenerator(Generator):
    """generator.keras of a run folder; its pixels are turned into uint8 here (to_uint8)."""

    def __init__(self, folder, info):
        super().__init__(folder, info, "generator.keras")
        import keras

        from ...layers import keras_layers  # noqa: F401  (registers cnnbuild's layers for loading)
        path = folder / GENERATOR
        try:
            with _quiet():
                self.model = keras.saving.load_model(path, compile=False)
        except Exception as e:   # a damaged or foreign file: say which, never a traceback
            raise UsageError(f"{path}: cannot load the generator: {first_line(e)}; train the GAN again to write "
                             "it") from None
        names = [tensor.name.split(":")[0] for tensor in self.model.inputs]
        wanted = ["noise", "label"] if info.conditional else ["noise"]
        if sorted(names) != sorted(wanted):
            raise UsageError(f"{path}: the generator's inputs are {names}, but gan.json describes a "
                             f"{'conditional' if info.conditional else 'unconditional'} GAN ({' and '.join(wanted)}); "
                             "the run folder is inconsistent: train it again")

    def pixels(self, noise, labels=None):
        """The generator's own output, float32 in the pixel range (inference mode)."""
        import keras
        import numpy as np
        inputs = {"noise": np.asarray(noise, np.float32)}
        if self.info.conditional:
            inputs["label"] = np.asarray(labels, np.int32)
        return keras.ops.convert_to_numpy(self.model(inputs if self.info.conditional else inputs["noise"],
                                                     training=False))

    def _images(self, noise, labels):
        import numpy as np
        pixels = self.pixels(noise, labels)
        if not np.isfinite(pixels).all():
            raise UsageError(f"{self.folder / GENERATOR}: the generator outputs NaN or infinite pixels: its training "
                             "diverged (the seeds' instability); train again, e.g. with lower learning rates in "
                             "gan.generator_optimizer and gan.discriminator_optimizer")
        return to_uint8(pixels, self.info.pixel_range)


class SavedModelGenerator(Generator):
    """A GAN export (SavedModel): the uint8 conversion is inside its graph."""

    def __init__(self, folder, info, trusted: bool = False):
        super().__init__(folder, info, "tf.saved_model.load")
        from ...serve.allowlist import refuse_unless_inference
        refuse_unless_inference(folder, trusted)     # before TensorFlow loads anything of it
        import tensorflow as tf

        try:
            with _quiet():
                self._loaded = tf.saved_model.load(str(folder))
        except Exception as e:
            raise UsageError(f"{folder}: cannot load the generator export: {first_line(e)}; export it again with "
                             "cnnbuild export GAN_RUN") from None
        if SIGNATURE not in self._loaded.signatures:
            raise UsageError(f"{folder}: the SavedModel has no '{SIGNATURE}' signature; export it again with "
                             "cnnbuild export GAN_RUN")
        self.fn = self._loaded.signatures[SIGNATURE]

    def _images(self, noise, labels):
        import tensorflow as tf
        inputs = {"noise": tf.constant(noise, tf.float32)}
        if self.info.conditional:
            inputs["label"] = tf.constant(labels, tf.int32)
        return self.fn(**inputs)["images"].numpy()


def open_generator(path, trusted: bool = False) -> Generator:
    """A GAN run folder's generator.keras, or a GAN export folder's SavedModel. Anything else
    (no such folder, a classifier run, an unfinished run) is refused in one line."""
    folder, info, kind = generator_files(path)
    return kind(folder, info, trusted) if kind is SavedModelGenerator else kind(folder, info)


def generator_files(path) -> tuple:
    """(folder, gan.json's GanInfo, the Generator class that reads it) — or the refusal, with
    no TensorFlow started."""
    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"{folder}: no such GAN run folder; train one first: cnnbuild train GAN_SPEC --out {folder}")
    if not folder.is_dir():
        raise UsageError(f"{folder}: is a file; give the GAN run folder (the one holding {GAN_INFO} and {GENERATOR})")
    if not (folder / GAN_INFO).is_file():
        if (folder / runfolder.MODEL).is_file() or (folder / MANIFEST).is_file():
            raise UsageError(f"{folder}: a classifier run or export, not a GAN run (no {GAN_INFO}); use cnnbuild "
                             "predict or evaluate on it, or give a run of `cnnbuild train GAN_SPEC`")
        raise UsageError(f"{folder}: not a GAN run folder (no {GAN_INFO}); train one first: cnnbuild train GAN_SPEC "
                         f"--out {folder}")
    if (folder / "saved_model.pb").is_file():      # an export: nothing in it may lead out of it
        runfolder.refuse_links_out(folder)
    for name in (GAN_INFO, GENERATOR):
        runfolder.within(folder, name)
    info = read_info(folder / GAN_INFO)
    if (folder / GENERATOR).is_file():
        return folder, info, KerasGenerator
    if (folder / "saved_model.pb").is_file():
        return folder, info, SavedModelGenerator
    raise UsageError(f"{folder}: not a finished GAN run (no {GENERATOR}, which training writes at its end); let the "
                     f"training finish, or resume it: cnnbuild train GAN_SPEC --out {folder}")


def fingerprint(folder) -> str:
    """sha256 of generator.keras and gan.json: which run a GAN export came from."""
    folder = Path(folder)
    digest = hashlib.sha256((folder / GENERATOR).read_bytes())
    digest.update((folder / GAN_INFO).read_bytes())
    return digest.hexdigest()


def class_index(info: GanInfo, text) -> int:
    """--class as a class name or an index 0 … K−1."""
    if not info.conditional:
        raise UsageError(f"--class {text}: {info.name} is an unconditional GAN (it was trained without labels), so it "
                         "cannot be asked for a class; leave out --class")
    text = str(text)
    if text in info.classes:
        return info.classes.index(text)
    count = len(info.classes)
    shown = ", ".join(info.classes[:12]) + (", …" if count > 12 else "")
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < count:
            return index
        raise UsageError(f"--class {text}: out of range; {info.name} has {count} classes, 0 … {count - 1} ({shown})")
    raise UsageError(f"--class {text}: no class of that name; {info.name}'s classes are {shown} (or their index "
                     f"0 … {count - 1})")


# ── sampling ───────────────────────────────────────────────────────────────────────────────

@dataclass
class Samples:
    images: object          # uint8 [n, H, W, C]
    labels: object          # int [n], or None when unconditional
    columns: int            # of the grid


def draw_samples(generator: Generator, count: int = 64, label: int | None = None, seed: int = 0) -> Samples:
    """`count` samples; a conditional generator without `label` makes ceil(count / K) of every
    class, class by class (one grid row each)."""
    import numpy as np
    info = generator.info
    if info.conditional and label is None:
        per_class = max(1, math.ceil(count / len(info.classes)))
        labels = np.repeat(np.arange(len(info.classes), dtype=np.int32), per_class)
        columns = per_class
    else:
        labels = np.full(count, label, np.int32) if info.conditional else None
        columns = math.ceil(math.sqrt(count))
    noise = noise_batch(len(labels) if labels is not None else count, info.noise, seed)
    return Samples(generator(noise, labels), labels, columns)


def sample_run(run, count: int = 64, class_name=None, seed: int = 0, out=None, trusted: bool = False) -> dict:
    """Sample a GAN run (or export) and write the grid PNG, or one PNG per sample when `out`
    is a folder (an existing one, or a path ending in /). Returns what was written."""
    if count < 1:
        raise UsageError(f"--n {count}: must be at least 1 (the number of samples)")
    check_seed(seed)
    folder = Path(run)
    generator = open_generator(folder, trusted)
    label = None if class_name is None else class_index(generator.info, class_name)
    destination = Path(out) if out else folder / DEFAULT_OUT
    as_files = out is not None and (str(out).endswith(("/", "\\")) or destination.is_dir())
    if not as_files and destination.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the grid is a PNG file, so name it NAME.png; or give a folder (ending in /) "
                         "for one PNG per sample")
    inside = destination.resolve().is_relative_to(folder.resolve()) and (folder / GENERATOR).is_file()
    with runfolder.owned(folder, "sample") if inside else contextlib.nullcontext():
        samples = draw_samples(generator, count, label, seed)
        if as_files:
            files = write_files(samples, destination)
        else:
            from ...views.grid import write_grid
            write_grid(samples.images, samples.columns, destination)
            files = [destination]
    info = generator.info
    shown = (f"class {info.classes[label]}" if label is not None else
             f"{len(info.classes)} classes, one row each" if info.conditional else "unconditional")
    return {"run": str(folder), "count": len(samples.images), "seed": seed, "what": shown, "grid": not as_files,
            "path": str(destination), "files": [str(f) for f in files], "image_shape": list(info.image_shape)}


def write_files(samples: Samples, folder: Path) -> list:
    """One PNG per sample at the generator's own size, `0007_class3.png` (`0007.png` when
    unconditional), each written atomically."""
    import io

    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(len(samples.images) - 1)))
    files = []
    for i, image in enumerate(samples.images):
        name = f"{i:0{digits}d}" + ("" if samples.labels is None else f"_class{int(samples.labels[i])}") + ".png"
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
        runfolder.atomic_write(folder / name, buffer.getvalue())
        files.append(folder / name)
    return files
