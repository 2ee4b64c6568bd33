"""`cnnbuild export GAN_RUN [--out DIR]`: a GAN's generator as a verified SavedModel.

The serving signature (`serving_default`):

    noise float32 [batch, noise]            standard normal, as in training
    label int32 [batch]                     conditional runs only: the class, 0 … K−1
      → the generator, in inference mode
      → pixel → uint8 inside the graph: round((x − lo) / (hi − lo) · 255) clipped to 0…255
      → {"images": uint8 [batch, H, W, C]}

The export folder holds saved_model.pb, variables/, gan.json (so `cnnbuild sample` takes the
export as it takes the run) and export.json, the manifest, with "kind": "gan_generator".

Verification and placement are export.py's: the folder is written to a hidden sibling,
reloaded with tf.saved_model.load alone, called twice on probe noise (seeded normal noise,
zeros, ±3 everywhere: the tails) with every class, and compared with generator.keras turned
into uint8 by the same rule outside the graph; only when every pixel is within TOLERANCE and
the two calls agree exactly is it renamed into place (replacing only an earlier export).
"""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from ... import runfolder
from ...errors import UsageError
from ...serve.export import (SIGNATURE, ExportError, _may_replace, _quiet, default_destination,
                     write_verified)
from .sample import GAN_INFO, GENERATOR, GENERATOR_KIND, KerasGenerator, SavedModelGenerator, fingerprint, noise_batch, generator_files, \
    to_uint8

# uint8 levels: the graph's float arithmetic may land a pixel on the other side of a .5 rounding
# boundary from the eager model's, never further
TOLERANCE = 1
PROBES = 16        # seeded noise samples in the verification batch (plus 6 fixed ones)


def export_generator(run_dir, out=None, format: str = "savedmodel") -> dict:
    """Export a GAN run's generator, verify it, and move it into place. Returns the manifest.
    Writing into the run folder (the default RUN/export/savedmodel) holds its lock."""
    if format != "savedmodel":
        raise UsageError(f"--format {format}: a GAN's generator is exported as a SavedModel only (the default); "
                         "leave out --format")
    run = Path(run_dir)
    destination = Path(out) if out else default_destination(run, format)
    inside = run.is_dir() and destination.resolve().is_relative_to(run.resolve())
    with runfolder.owned(run, "export") if inside else contextlib.nullcontext():
        folder, info, kind = generator_files(run)      # the refusals first: no TensorFlow for them
        if kind is not KerasGenerator:
            raise UsageError(f"{run}: already a generator export; export the GAN run it came from (the folder with "
                             f"{GENERATOR})")
        _may_replace(destination, run, default_destination(run, format))
        from ...tfstart import start_tensorflow
        start_tensorflow()
        generator = kind(folder, info)

        def fill(partial: Path) -> dict:
            with _quiet():
                write_savedmodel(generator, partial)
            shutil.copyfile(run / GAN_INFO, partial / GAN_INFO)
            info = generator.info
            height, width, channels = info.image_shape
            manifest = {
                "format": format, "kind": GENERATOR_KIND, "file": ".", "signature": SIGNATURE,
                "inputs": {"noise": f"float32 [batch, {info.noise}], standard normal"}
                | ({"label": f"int32 [batch], 0 … {len(info.classes) - 1}"} if info.conditional else {}),
                "outputs": {"images": f"uint8 [batch, {height}, {width}, {channels}]"},
                "pixels": f"round((x − {info.pixel_range[0]:g}) / ({info.pixel_range[1]:g} − {info.pixel_range[0]:g})"
                          " · 255) clipped to 0…255, inside the graph",
                "gan": info.to_json(), "classes": list(info.classes),
                "source": str(run), "source_fingerprint": fingerprint(run),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            manifest["verified"] = verify(partial, generator)
            return manifest
        return write_verified(destination, format, fill)


def write_savedmodel(generator: KerasGenerator, folder: Path) -> None:
    """The serving graph: noise (and label) → generator → uint8 images."""
    import tensorflow as tf
    from keras.export import ExportArchive
    model, info = generator.model, generator.info
    lo, hi = info.pixel_range

    def images(pixels):
        scaled = (tf.cast(pixels, tf.float32) - lo) / (hi - lo) * 255.0
        return {"images": tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)}
    noise = tf.TensorSpec([None, info.noise], tf.float32, name="noise")
    archive = ExportArchive()
    archive.track(model)
    if info.conditional:
        count = len(info.classes)

        def serve(noise, label):
            # a label outside 0 … K−1 would one-hot to zeros and make a picture of no class: refuse it
            checks = [tf.debugging.assert_non_negative(label, message="label below 0"),
                      tf.debugging.assert_less(label, tf.constant(count, tf.int32),
                                               message=f"label above {count - 1} (the GAN has {count} classes)")]
            with tf.control_dependencies(checks):
                return images(model({"noise": noise, "label": tf.identity(label)}, training=False))
        signature = [noise, tf.TensorSpec([None], tf.int32, name="label")]
    else:
        def serve(noise):
            return images(model(noise, training=False))
        signature = [noise]
    archive.add_endpoint(SIGNATURE, serve, input_signature=signature)
    archive.write_out(str(folder), verbose=False)


def probe_noise(info):
    """Noise to verify on, with the labels to pair it with: seeded normal noise, zeros, ±3
    everywhere and an alternating ±3 (the tails a sample can reach), each class in turn."""
    import numpy as np
    size = info.noise
    fixed = np.stack([np.zeros(size), np.full(size, 3.0), np.full(size, -3.0),
                      np.resize([3.0, -3.0], size), np.resize([-3.0, 3.0], size), np.linspace(-2, 2, size)])
    noise = np.concatenate([noise_batch(PROBES, size, seed=12345), fixed.astype(np.float32)])
    labels = (np.arange(len(noise)) % len(info.classes)).astype(np.int32) if info.conditional else None
    return noise, labels


def verify(folder: Path, generator: KerasGenerator) -> dict:
    """Reload the export with TensorFlow alone, call it twice, compare with generator.keras."""
    import numpy as np
    info = generator.info
    loaded = SavedModelGenerator(folder, info)
    noise, labels = probe_noise(info)
    expected = to_uint8(generator.pixels(noise, labels), info.pixel_range)
    with _quiet():
        first, second = loaded(noise, labels), loaded(noise, labels)
    if not np.array_equal(first, second):
        raise ExportError("the generator export gives different images on two calls with the same noise: something "
                          "random is active at inference (dropout or noise in training mode); nothing was replaced")
    if first.shape != expected.shape or first.shape[1:] != tuple(info.image_shape):
        raise ExportError(f"the generator export makes images of shape {list(first.shape[1:])}, generator.keras "
                          f"{list(expected.shape[1:])} and gan.json says {list(info.image_shape)}; the run folder is "
                          "inconsistent: train it again")
    worst = int(np.abs(first.astype(np.int16) - expected.astype(np.int16)).max())
    if worst > TOLERANCE:
        raise ExportError(f"the generator export differs from generator.keras by up to {worst} of 255 (allowed "
                          f"{TOLERANCE}) on {len(noise)} samples; nothing was replaced at the destination")
    return {"runtime": "tf.saved_model.load", "max_abs_diff": worst, "tolerance": TOLERANCE, "samples": len(noise),
            "deterministic": True}


def describe(run_dir, manifest: dict, seconds: float) -> str:
    """What `cnnbuild export GAN_RUN` prints."""
    info, check = manifest["gan"], manifest["verified"]
    inputs = f"noise float32 [batch, {info['noise']}]" + (" and label int32 [batch]" if info["conditional"] else "")
    classes = f", {len(info['classes'])} classes" if info["conditional"] else ""
    return (f"exported the generator of {run_dir} → {manifest['path']} (SavedModel: {inputs} → images "
            f"{manifest['outputs']['images']}{classes})\n"
            f"verified with {check['runtime']}: max |export − generator.keras| = {check['max_abs_diff']} of 255 on "
            f"{check['samples']} samples (≤ {check['tolerance']}); two calls identical; {seconds:.1f} s")
