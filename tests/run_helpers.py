"""Small real run folders for the export / predict / evaluate / transfer tests, written by the
run-folder contract (cnnbuild/runfolder.py) without `cnnbuild train`: build a spec's model,
train it a few steps on scikit-learn's bundled 8×8 digits, save model.keras, classes.json and
spec.yaml."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DIGIT_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Batchnorm and dropout on purpose: an export must run them in inference mode.
SMALL_SPEC = """\
name: small
input: [16, 16, 1]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, batchnorm: {momentum: 0.9}, activation: relu}
  - max_pool: 2
  - conv: {filters: 16, kernel: 3, padding: same, activation: relu}
  - max_pool: 2
  - flatten
  - dropout: 0.3
  - dense: {units: 10, activation: softmax}
"""


def digits():
    """The 1,797 real 8×8 digits as uint8 images [n, 8, 8, 1] (0–16 scaled to 0–255) and labels."""
    from sklearn.datasets import load_digits
    data = load_digits()
    images = np.round(data.images * (255 / 16)).astype(np.uint8)[..., None]
    return images, data.target.astype(np.int64)


def train_model(model, images, labels, epochs=1, batch_size=64, seed=0):
    """A few real training steps, through cnnbuild's one preprocessing function."""
    import keras

    from cnnbuild.preprocess import preprocess
    keras.utils.set_random_seed(seed)
    x = preprocess(images, tuple(model.input_shape[1:])).numpy()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, labels, epochs=epochs, batch_size=batch_size, verbose=0)


def make_run(folder, spec_text=SMALL_SPEC, classes=DIGIT_CLASSES, epochs=2, spec_name="spec.yaml"):
    """Write a trained run folder; returns its Path."""
    from cnnbuild import build_model, load_spec
    from cnnbuild import runfolder
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder.parent / f"{folder.name}.{spec_name}"
    spec_path.write_text(spec_text, encoding="utf-8")
    model = build_model(load_spec(spec_path))
    images, labels = digits()
    train_model(model, images, labels, epochs=epochs)
    runfolder.atomic_write(folder / runfolder.SPEC, spec_text)
    runfolder.write_json(folder / runfolder.CLASSES, list(classes))
    model.save(folder / runfolder.MODEL)
    return folder


def write_digit_pngs(folder, count=6, size=None):
    """Real digits as PNG files (optionally enlarged, as a user's scans would be); returns
    [(path, label)]."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digits()
    out = []
    for i in range(count):
        picture = Image.fromarray(images[i, ..., 0], mode="L")
        if size:
            picture = picture.resize((size, size), Image.NEAREST)
        path = folder / f"digit_{i}_{labels[i]}.png"
        picture.save(path)
        out.append((path, int(labels[i])))
    return out
