"""Run folder → a verified export: SavedModel (default), .keras, ONNX or TFLite.

Every format holds the same serving graph:

    raw uint8 images [batch, height, width, C]      any batch, any height and width; C = 1, 3 or 4
      → cnnbuild.preprocess (grayscale ↔ RGB, bilinear resize to the training size, scale to
        0…1: exactly what training did to its images)
      → the trained model, in inference mode (dropout off, batchnorm's moving statistics)
      → {"probabilities": [batch, classes] float32, "class_id": [batch] int64}

(TFLite takes C = the spec's channels only: choosing the conversion per image needs a
TensorFlow "Flex" op that LiteRT's builtin interpreter lacks), with the class names in
`classes.json` beside it (the SavedModel also returns them as a
`class_name` string output). An export folder holds one model file and two JSON files:

    export/savedmodel/   saved_model.pb, variables/, classes.json, export.json
    export/keras/        model.keras, classes.json, export.json
    export/onnx/         model.onnx, classes.json, export.json
    export/tflite/       model.tflite, classes.json, export.json

Verification is part of export. The folder is written to a hidden sibling, reloaded with the
format's own runtime (tf.saved_model.load, keras.saving.load_model, onnxruntime, the TFLite
interpreter), run twice on a batch of images and compared with the trained Keras model; only
when the largest difference is within TOLERANCE and the two runs agree exactly is it renamed
into place. A failed or interrupted export never leaves a half-written folder at the
destination and never replaces a good one. A GAN run's generator is exported by gan_export.py
through the same placement (`write_verified`, `_may_replace`).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import runfolder
from ..errors import Failure, UsageError, first_line

FORMATS = ("savedmodel", "keras", "onnx", "tflite")
MODEL_FILES = {"savedmodel": "saved_model.pb", "keras": "model.keras", "onnx": "model.onnx", "tflite": "model.tflite"}
LABELS = {"savedmodel": "SavedModel", "keras": "Keras", "onnx": "ONNX", "tflite": "TFLite"}
MANIFEST = "export.json"
CLASSES = "classes.json"
TOLERANCE = 1e-5          # largest |export − Keras| allowed on a probability, float32 (issue 4)
SIGNATURE = "serving_default"
EXTRAS = {"onnx": ("tf2onnx", "onnxruntime"), "tflite": ()}
CLASSIFIER_KIND = "classifier"   # export.json's "kind": what this module exports and runs (a family's own exports say theirs)


class ExportError(Failure):
    """An export could not be made or did not verify (exit status 1)."""


@dataclass
class Run:
    """What export needs from a run folder: the trained model and its class names."""

    folder: Path
    model: object            # keras.Model
    classes: list
    image_shape: tuple       # (height, width, channels) the model was trained on
    fingerprint: str         # sha256 of model.keras and classes.json: which run an export came from (staleness
                             # only: anyone who can write the folder recomputes it; allowlist.py vouches)


def input_channels(format: str, image_shape):
    """The channel axis an export takes: any (None) but for TFLite, which takes the spec's."""
    return image_shape[2] if format == "tflite" else None


def default_destination(run_dir, format: str) -> Path:
    return Path(run_dir) / "export" / format


def export_run(run_dir, out=None, format: str = "savedmodel", tolerance: float = TOLERANCE) -> dict:
    """Export a run folder's trained model, verify the export, and move it into place.
    Returns the manifest (also written as export.json in the export folder). Writing into
    the run folder (the default RUN/export/FORMAT) holds its lock: not while `train` runs."""
    run, destination = Path(run_dir), Path(out) if out else default_destination(run_dir, format)
    inside = run.is_dir() and destination.resolve().is_relative_to(run.resolve())
    with runfolder.owned(run, "export") if inside else contextlib.nullcontext():
        return _export_run(run_dir, out, format, tolerance)


def _export_run(run_dir, out, format, tolerance) -> dict:
    if format not in FORMATS:
        raise UsageError(f"unknown export format '{format}': expected one of {', '.join(FORMATS)}")
    _check_extras(format)
    destination = Path(out) if out else default_destination(run_dir, format)
    check_run_folder(Path(run_dir))      # every refusal that needs no TensorFlow, before it starts
    _may_replace(destination, Path(run_dir), default_destination(run_dir, format))
    from ..tfstart import start_tensorflow
    start_tensorflow()
    run = load_run(run_dir)

    def fill(partial: Path) -> dict:
        channels = input_channels(format, run.image_shape)
        serving = serving_model(run.model, run.image_shape, channels)
        with _quiet():
            WRITERS[format](serving, run, partial)
        _write_json(partial / CLASSES, run.classes)
        manifest = {
            "format": format, "file": MODEL_FILES[format] if format != "savedmodel" else ".",
            "signature": SIGNATURE if format in ("savedmodel", "tflite") else None,
            "input": {"name": "images", "dtype": "uint8", "shape": [None, None, None, channels],
                      "training_size": list(run.image_shape[:2]), "training_channels": run.image_shape[2],
                      "resize": "bilinear to the training size, inside the graph (cnnbuild.preprocess)",
                      "training_images": _profile(run.folder)},
            "outputs": {"probabilities": "float32 [batch, classes]", "class_id": "int64 [batch]"}
            | ({"class_name": "string [batch]"} if format == "savedmodel" else {}),
            "classes": run.classes, "source": str(run.folder), "source_fingerprint": run.fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        manifest["verified"] = verify(partial, format, run, manifest, tolerance)
        return manifest
    return write_verified(destination, format, fill)


def write_verified(destination: Path, format: str, fill) -> dict:
    """Make an export in a hidden sibling of `destination` (`fill(partial)` writes the files,
    verifies them and returns the manifest) and move it into place only when that succeeded.
    Shared by the classifier exports and a GAN's generator export (gan_export.py)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    _recover(destination)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-{os.getpid()}-", dir=destination.parent))
    try:
        partial.chmod(0o777 & ~runfolder.UMASK)   # mkdtemp's 0700 would hide the export from other users
        manifest = fill(partial)
        _write_json(partial / MANIFEST, manifest)
        _fsync_tree(partial)
        _swap_into_place(partial, destination)
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if _disk_full(e):
            kept = f"the previous export in {destination} is intact" if destination.exists() else \
                "nothing was written at the destination"
            raise ExportError(f"the disk holding {destination.parent} is full (no space left on device) while writing "
                              f"the {format} export; {kept}\n  hint: free some space there, or export elsewhere with "
                              f"--out") from None
        raise
    return manifest | {"path": str(destination)}


def _profile(folder: Path) -> dict:
    """The run's description of its training images (train/data.py image_profile), if it has one."""
    try:
        profile = runfolder.read_json(runfolder.within(folder, runfolder.PROFILE))
    except (OSError, ValueError, UsageError):
        return {}
    return profile if isinstance(profile, dict) else {}


def _may_replace(destination: Path, run_folder: Path, suggestion: Path) -> None:
    """Export replaces only an earlier export of cnnbuild's (a folder with export.json) or an
    empty folder: never a folder of the user's, never the run itself or a folder holding it."""
    where, run = destination.resolve(), run_folder.resolve()
    if where == run or where in run.parents:
        raise UsageError(f"--out {destination}: that folder holds the run {run_folder} itself; choose a folder of "
                         f"its own, e.g. {suggestion}")
    if not destination.exists() and not destination.is_symlink():
        return
    if not destination.is_dir() or destination.is_symlink():
        raise UsageError(f"--out {destination}: exists and is not a folder; choose another destination, e.g. {suggestion}")
    entries = sorted(entry.name for entry in destination.iterdir())
    if not entries or _is_export(destination):
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise UsageError(f"--out {destination}: the folder holds files that are not a cnnbuild export ({shown}); export "
                     f"replaces only an earlier export (a folder with {MANIFEST}), and nothing there was touched\n"
                     f"  hint: give a new or empty folder, e.g. {destination / 'export'}")


def _is_export(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") in FORMATS


def _disk_full(error: BaseException) -> bool:
    """A full disk, as Python reports it (OSError ENOSPC / EDQUOT) or as TensorFlow's and
    Keras's writers do (their own error types, with the system's message)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(error) or "Disk quota exceeded" in str(error)


# ── the run folder ─────────────────────────────────────────────────────────────────────────

def check_run_folder(folder: Path) -> None:
    """A finished run folder (with its model file, not a link out of it), or a refusal saying
    what to do; no TensorFlow."""
    if folder.is_dir():
        runfolder.within(folder, runfolder.MODEL), runfolder.within(folder, runfolder.CLASSES)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such run folder; train one first: cnnbuild train SPEC --out {folder}")
    if not (folder / runfolder.MODEL).is_file():
        raise UsageError(f"{folder}: not a finished run folder (no {runfolder.MODEL}); train it first "
                         f"(cnnbuild train SPEC --out {folder}) or give the folder that has it")


def load_run(run_dir) -> Run:
    folder = Path(run_dir)
    model_path = folder / runfolder.MODEL
    check_run_folder(folder)
    import keras

    from ..layers import keras_layers  # noqa: F401  (registers cnnbuild's layers for loading)
    try:
        if not zipfile.is_zipfile(model_path):
            raise ValueError("not a Keras model file (a .keras file is a zip archive; this one is not)")
        with _quiet():
            model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:   # a damaged or foreign file: say which, never a traceback
        raise UsageError(f"{model_path}: cannot load the trained model: {model_problem(e)}; "
                         "re-run `cnnbuild train` to write it again") from None
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 3 or None in shape:
        raise UsageError(f"{model_path}: expected one image input [height, width, channels], got {model.input_shape}")
    outputs = model.output_shape[-1]
    classes = _read_classes(folder, outputs)
    return Run(folder, model, classes, shape, fingerprint(folder))


def model_problem(error: Exception) -> str:
    """Why Keras could not load a model file, in words: its KeyError names a missing entry of
    the model's configuration (a file edited or made by hand), which alone reads as 'name'."""
    if isinstance(error, KeyError):
        return f"its configuration lacks the entry {error} (a file not saved by Keras, or edited)"
    return first_line(error)


def fingerprint(run_dir) -> str:
    """sha256 of a run's model.keras and classes.json: tells which model an export came from."""
    folder = Path(run_dir)
    digest = hashlib.sha256((folder / runfolder.MODEL).read_bytes())
    if (folder / runfolder.CLASSES).is_file():
        digest.update((folder / runfolder.CLASSES).read_bytes())
    return digest.hexdigest()


def _read_classes(folder: Path, outputs: int) -> list:
    path = folder / runfolder.CLASSES
    if not path.is_file():
        print(f"warning: {path} is missing; naming the classes 0 … {outputs - 1}", file=sys.stderr)
        return [str(i) for i in range(outputs)]
    try:
        value = runfolder.read_json(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not readable JSON ({e}); it should list the class names in label order") from None
    if isinstance(value, dict):
        value = value.get("classes", value.get("names"))
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise UsageError(f"{path}: expected a list of class names in label order, e.g. [\"cat\", \"dog\"]")
    if len(value) != outputs:
        raise UsageError(f"{path}: lists {len(value)} classes but the model has {outputs} outputs; "
                         "the run folder is inconsistent: train it again")
    return [str(v) for v in value]


# ── the serving graph ──────────────────────────────────────────────────────────────────────

def serving_model(model, image_shape, channels=None):
    """raw uint8 images → preprocess → model (inference mode) → probabilities and class ids,
    as one Keras functional model that every format is exported from. `channels` None takes
    grayscale, RGB or RGBA images alike (preprocess converts them as training did); TFLite
    gets the spec's channels fixed, since the per-image choice needs a TensorFlow (Flex) op
    that LiteRT's builtin interpreter lacks."""
    import keras

    from ..assemble import ends_in_probabilities
    from ..layers.keras_layers import ClassId, Preprocess
    images = keras.Input((None, None, channels), dtype="uint8", name="images")
    probabilities = model(Preprocess(image_shape, name="preprocess")(images), training=False)
    if not ends_in_probabilities(model):   # logits: the export adds a softmax, so `probabilities` always are
        probabilities = keras.layers.Softmax(name="probabilities")(probabilities)
    class_id = ClassId(name="class_id")(probabilities)
    return keras.Model(images, {"probabilities": probabilities, "class_id": class_id}, name=f"{model.name}_serving")


def reference(run: Run, images):
    """The trained Keras model's probabilities for uint8 images, computed eagerly outside any
    export: the numbers an export must reproduce."""
    import keras

    from ..assemble import ends_in_probabilities
    from ..preprocess import preprocess
    out = run.model(preprocess(images, run.image_shape), training=False)
    if not ends_in_probabilities(run.model):
        out = keras.ops.softmax(out, axis=-1)
    return keras.ops.convert_to_numpy(out)


def probe_images(image_shape, any_channels=True, seed: int = 0):
    """Deterministic uint8 batches to verify an export on: at the training size (noise, smooth
    gradients, blank black and white, a bright square) and, separately, at another size so the
    resize inside the graph is checked too, and (when the export takes any channels) with
    the other channel count (RGB for a grayscale model, grayscale for an RGB one)."""
    import numpy as np
    height, width, channels = image_shape
    rng = np.random.default_rng(seed)

    def batch(h, w, channels=channels):
        ramp = np.linspace(0, 255, h * w).reshape(h, w, 1).repeat(channels, -1)
        square = np.zeros((h, w, channels))
        square[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
        images = [rng.integers(0, 256, (h, w, channels)) for _ in range(4)]
        images += [ramp, ramp[::-1], np.zeros((h, w, channels)), np.full((h, w, channels), 255), square]
        return np.stack(images).astype(np.uint8)
    batches = [batch(height, width), batch(2 * height + 3, width + 5)[:3]]
    if any_channels and channels in (1, 3):
        batches.append(batch(height, width, 4 - channels)[:4])
    return batches


# ── writers: one per format, each from the serving model into a folder ─────────────────────

def channels_of(serving):
    return serving.inputs[0].shape[-1]


def _image_spec(channels):
    """The exported input: uint8 images, any batch, any height and width; `channels` None
    means any of 1, 3 or 4 (converted inside the graph as in training)."""
    import tensorflow as tf
    return tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")


def _write_savedmodel(serving, run, folder):
    import tensorflow as tf
    from keras.export import ExportArchive
    names = tf.constant(run.classes)

    def serve(images):
        out = serving(images, training=False)
        return {"probabilities": out["probabilities"], "class_id": out["class_id"],
                "class_name": tf.gather(names, out["class_id"])}
    archive = ExportArchive()
    archive.track(serving)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[_image_spec(channels_of(serving))])
    archive.write_out(str(folder), verbose=False)


def _write_keras(serving, run, folder):
    serving.save(folder / MODEL_FILES["keras"])


def _converted(keras_format: str, label: str):
    """A writer through Keras's own converters (`model.export(format=…)`): ONNX, LiteRT."""
    def write(serving, run, folder):
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        target = folder / MODEL_FILES["onnx" if keras_format == "onnx" else "tflite"]
        try:
            serving.export(str(target), format=keras_format, verbose=False,
                           input_signature=[_image_spec(channels_of(serving))])
        except Exception as e:
            raise ExportError(f"{label} conversion failed: {first_line(e)}; the SavedModel export (the default) "
                              "supports every layer") from None
    return write


WRITERS = {"savedmodel": _write_savedmodel, "keras": _write_keras,
           "onnx": _converted("onnx", "ONNX (tf2onnx)"), "tflite": _converted("litert", "TFLite")}


# ── runners: load an export with its own runtime and run it ────────────────────────────────

class Runner:
    """An export loaded for inference: call it on uint8 images [batch, h, w, C] to get
    (probabilities float32 [batch, classes], class ids int64 [batch])."""

    runtime = ""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = folder, manifest
        self.classes = _export_classes(folder, manifest)
        self.channels = manifest.get("input", {}).get("shape", [None, None, None, None])[-1]
        self.training_channels = manifest.get("input", {}).get("training_channels", self.channels)


class SavedModelRunner(Runner):
    runtime = "tf.saved_model.load"

    def __init__(self, folder, manifest):
        import tensorflow as tf
        loaded = tf.saved_model.load(str(folder))
        self._keep = loaded
        if SIGNATURE not in loaded.signatures:
            raise UsageError(f"{folder}: the SavedModel has no '{SIGNATURE}' signature; export it with cnnbuild export")
        self.fn = loaded.signatures[SIGNATURE]
        spec = self.fn.structured_input_signature[1]["images"]
        manifest = manifest or {"input": {"shape": spec.shape.as_list()}}
        super().__init__(folder, manifest)
        self.channels = spec.shape[-1]

    def __call__(self, images):
        import tensorflow as tf
        out = self.fn(images=tf.constant(images))
        return out["probabilities"].numpy(), out["class_id"].numpy()


class KerasRunner(Runner):
    runtime = "keras.saving.load_model"

    def __init__(self, folder, manifest):
        super().__init__(folder, manifest)
        import keras

        from ..layers import keras_layers  # noqa: F401  (Preprocess, ClassId)
        with _quiet():
            self.model = keras.saving.load_model(folder / MODEL_FILES["keras"], compile=False)

    def __call__(self, images):
        import keras
        out = self.model(images, training=False)
        return keras.ops.convert_to_numpy(out["probabilities"]), keras.ops.convert_to_numpy(out["class_id"])


class OnnxRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, folder, manifest):
        super().__init__(folder, manifest)
        _check_extras("onnx", need=("onnxruntime",))
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(folder / MODEL_FILES["onnx"]), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, images):
        out = dict(zip(self.outputs, self.session.run(None, {self.input: images})))
        return out["probabilities"], out["class_id"]


class TFLiteRunner(Runner):
    def __init__(self, folder, manifest):
        super().__init__(folder, manifest)
        interpreter_class, self.runtime = tflite_interpreter()
        self.interpreter = interpreter_class(model_path=str(folder / MODEL_FILES["tflite"]))
        self.fn = self.interpreter.get_signature_runner(SIGNATURE)

    def __call__(self, images):
        out = self.fn(images=images)
        return out["probabilities"], out["class_id"]


RUNNERS = {"savedmodel": SavedModelRunner, "keras": KerasRunner, "onnx": OnnxRunner, "tflite": TFLiteRunner}


def tflite_interpreter():
    """LiteRT's interpreter (ai-edge-litert) when installed, else TensorFlow's tf.lite one."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert.Interpreter"
    except ImportError:
        import tensorflow as tf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter, "tf.lite.Interpreter"


def open_export(path, trusted: bool = False) -> Runner:
    """Load an export folder (or a bare SavedModel folder, .keras, .onnx or .tflite file). A
    SavedModel is loaded only when its graph holds nothing but inference ops (allowlist.py),
    or when the user `trusted` it (--trust-model)."""
    path = Path(path)
    folder, manifest = path, {}
    runfolder.refuse_links_out(path.parent if path.is_file() else path)
    if path.is_file():
        # a model file inside an export folder: the folder is the export (its classes and
        # manifest are beside the file), and the file must be the one its manifest names
        folder = path.parent
        if not (folder / MANIFEST).is_file():
            raise UsageError(f"{path}: not inside an export folder (no {MANIFEST} beside it); give the export folder, "
                             f"or make one with `cnnbuild export RUN_DIR`")
        manifest = _manifest(folder)
        named = folder / manifest.get("file", "")
        if named.resolve() != path.resolve():
            raise UsageError(f"{path}: the export in {folder} is {named.name if named != folder else 'the folder itself'}"
                             f" (its {MANIFEST} says so), not {path.name}; give the folder {folder}")
        format = manifest["format"]
    elif (path / MANIFEST).is_file():
        manifest = _manifest(path)
        format = manifest["format"]
    elif (path / MODEL_FILES["savedmodel"]).is_file():
        format = "savedmodel"
    else:
        raise UsageError(f"{path}: not an export folder (no {MANIFEST} or saved_model.pb); make one with "
                         f"`cnnbuild export RUN_DIR --out {path}`")
    if format not in RUNNERS:
        raise UsageError(f"{path}: unknown export format '{format}'")
    if manifest.get("kind", CLASSIFIER_KIND) != CLASSIFIER_KIND:
        raise UsageError(f"{path}: a {manifest['kind']} export, not a classifier's; give an export of a classifier run")
    return _open(folder, format, manifest, trusted)


def _manifest(folder: Path) -> dict:
    try:
        manifest = runfolder.read_json(folder / MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
            raise ValueError("no known 'format'")
    except (OSError, ValueError) as e:
        raise UsageError(f"{folder / MANIFEST}: not a cnnbuild export manifest ({e}); export again") from None
    return manifest


def _open(folder: Path, format: str, manifest: dict, trusted: bool = False) -> Runner:
    if format == "savedmodel":
        from .allowlist import refuse_unless_inference
        refuse_unless_inference(folder, trusted)   # before TensorFlow loads anything of it
    try:
        with _quiet():
            return RUNNERS[format](folder, manifest)
    except (UsageError, ExportError):
        raise
    except Exception as e:
        raise UsageError(f"{folder}: cannot load the {LABELS[format]} export: {first_line(e)}") from None


def _export_classes(folder: Path, manifest: dict) -> list:
    if (folder / CLASSES).is_file():
        return [str(c) for c in runfolder.read_json(folder / CLASSES)]
    return [str(c) for c in manifest.get("classes", [])]


# ── verification ───────────────────────────────────────────────────────────────────────────

def verify(folder: Path, format: str, run: Run, manifest: dict, tolerance: float = TOLERANCE) -> dict:
    """Reload the export with its own runtime, run it twice on the probe batches, and compare
    with the trained Keras model. Raises ExportError when it does not match."""
    import numpy as np
    runner = _open(folder, format, manifest)
    worst, count = 0.0, 0
    for images in probe_images(run.image_shape, any_channels=runner.channels is None):
        expected = reference(run, images)
        with _quiet():
            first, ids = runner(images)
            second, ids_again = runner(images)
        if not (np.array_equal(first, second) and np.array_equal(ids, ids_again)):
            raise ExportError(f"the {LABELS[format]} export gives different outputs on two calls with the same "
                              f"images (largest change {np.abs(first - second).max():.2e}): something random is "
                              "active at inference (augmentation or dropout in training mode); nothing was replaced")
        if first.shape != expected.shape:
            raise ExportError(f"the {LABELS[format]} export returns probabilities of shape {list(first.shape)}, the "
                              f"trained model {list(expected.shape)}; nothing was replaced")
        worst = max(worst, float(np.abs(first.astype(np.float32) - expected).max()))
        count += len(images)
        # class ids must be the argmax wherever the top two classes are further apart than the tolerance
        top2 = np.sort(expected, axis=-1)[..., -2:]
        clear = (top2[..., 1] - top2[..., 0]) > 2 * tolerance
        if not np.array_equal(ids[clear], expected.argmax(-1)[clear]):
            raise ExportError(f"the {LABELS[format]} export's class ids differ from the trained model's; nothing was replaced")
    if not worst <= tolerance:
        raise ExportError(f"the {LABELS[format]} export differs from the trained Keras model by up to {worst:.3g} "
                          f"(allowed {tolerance:g}) on {count} images; nothing was replaced at the destination")
    return {"runtime": runner.runtime, "max_abs_diff": worst, "tolerance": tolerance, "images": count,
            "deterministic": True}


# ── putting the folder in place ────────────────────────────────────────────────────────────

def _swap_into_place(partial: Path, destination: Path) -> None:
    """Move the verified folder to `destination`. A previous export there is exchanged in one
    atomic step where Linux's renameat2(RENAME_EXCHANGE) exists, else renamed aside first
    (an interruption between the two renames is repaired by the next export, `_recover`)."""
    if not destination.exists():
        os.rename(partial, destination)
    elif _exchange(partial, destination):
        shutil.rmtree(partial, ignore_errors=True)   # `partial` now holds the previous export
    else:
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
        os.rename(destination, old)
        os.rename(partial, destination)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(destination.parent)


def _exchange(a: Path, b: Path) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def _recover(destination: Path) -> None:
    """Clean up after exports that were killed: remove their partial folders (their process
    is gone), and put back a previous export that was renamed aside but not replaced."""
    for sibling in destination.parent.glob(f".{destination.name}.partial-*"):
        pid = sibling.name.split("partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)
    for old in destination.parent.glob(f".{destination.name}.old-*"):
        if not destination.exists():
            os.rename(old, destination)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(folder: Path) -> None:
    """Flush the export's files to disk before it is renamed into place."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ── small helpers ──────────────────────────────────────────────────────────────────────────

def _check_extras(format: str, need=None) -> None:
    import importlib.util
    missing = [m for m in (need or EXTRAS.get(format, ())) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--format {format} needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                         f"which {'are' if len(missing) > 1 else 'is'} not installed: pip install -e '.[{format}]' from a checkout "
                         f"(the -e keeps it editable), or pip install 'cnnbuild[{format}]' (the default SavedModel "
                         "export needs only TensorFlow)")


@contextlib.contextmanager
def _quiet():
    """Keep converters' chatter (tf2onnx's INFO lines, Keras's notes, numpy FutureWarnings) off
    the user's terminal; errors still surface as exceptions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _write_json(path: Path, value) -> None:
    """Inside the partial folder a plain write is enough: the folder is renamed into place whole."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
