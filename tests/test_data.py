"""Data sources on small real files the tests write: digits, shapes, directory, npz,
tfrecord, tfds; validation split or source; bad data named (or skipped and counted)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnbuild import infer, parse_spec
from cnnbuild.sources import DataError
from cnnbuild.train.data import load_data
from cnnbuild.sources.shapes import generate_shapes
from cnnbuild.train.pipeline import Pipeline

CLASSIFIER = """\
name: net
input: [{h}, {w}, {c}]
layers:
  - flatten
  - dense: {{units: {k}, activation: softmax}}
data: {data}
"""

SEGMENTER = """\
name: seg
input: [{h}, {w}, {c}]
layers:
  - conv: {{filters: {k}, kernel: 1, activation: softmax}}
data: {data}
"""


def spec_of(data, h=16, w=16, c=1, k=10, segment=False, extra=""):
    text = (SEGMENTER if segment else CLASSIFIER).format(h=h, w=w, c=c, k=k, data=data) + extra
    return parse_spec(text, "test.yaml")


def load(spec):
    return load_data(spec, infer(spec).output)


def batches(loaded, spec, batch=8):
    pipeline = Pipeline(loaded, spec.input, batch, seed=0)
    return pipeline, list(pipeline.train_epoch(0).as_numpy_iterator())


def digit_images(count=40):
    from sklearn.datasets import load_digits
    digits = load_digits()
    return np.round(digits.images[:count] * 255 / 16).astype(np.uint8), digits.target[:count]


def write_class_folders(root, classes=3, per_class=5, suffixes=(".png",), mode="L"):
    images, labels = digit_images(200)
    written = []
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        picks = np.flatnonzero(labels == label)[:per_class]
        for n, i in enumerate(picks):
            path = folder / f"{n}{suffixes[n % len(suffixes)]}"
            Image.fromarray(images[i]).convert(mode).save(path)
            written.append(path)
    return written


# ── digits and shapes ──────────────────────────────────────────────────────────────────────

def test_digits_is_the_default_and_splits_by_seed():
    spec = spec_of("digits", h=32, w=32)
    loaded = load(spec)
    from sklearn.datasets import load_digits
    total = len(load_digits().target)                      # scikit-learn's 1,797 scans
    assert loaded.train.count + loaded.validation.count == total == 1797
    assert loaded.validation.count == round(total * 0.2)   # validation_split's default, 0.2
    assert loaded.classes == [str(i) for i in range(10)]
    again = load(spec)
    assert np.array_equal(again.validation.columns["label"], loaded.validation.columns["label"])
    other = load(spec_of("digits", h=32, w=32, extra="train: {seed: 5}\n"))
    assert not np.array_equal(other.validation.columns["label"], loaded.validation.columns["label"])
    # the 0…16 scans become 0…255 and are resized by preprocess to the spec's 32×32
    _, got = batches(loaded, spec)
    images, labels = got[0]
    assert images.shape == (8, 32, 32, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.9
    assert labels.dtype == np.int32


def test_digits_default_when_no_data_section():
    spec = parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten, {dense: {units: 10}}]\n")
    assert spec.data.kind == "digits" and spec.data.holdout == 0.2


def test_shapes_are_seeded_with_masks_matching_labels():
    images, labels, masks = generate_shapes(30, 24, 20, 3, seed=4)
    assert images.shape == (30, 24, 20, 3) and masks.shape == (30, 24, 20)
    again = generate_shapes(30, 24, 20, 3, seed=4)
    assert np.array_equal(again[0], images) and np.array_equal(again[2], masks)
    assert not np.array_equal(generate_shapes(30, 24, 20, 3, seed=5)[0], images)
    for label, mask, image in zip(labels, masks, images):
        assert set(np.unique(mask)) == {0, label + 1}
        inside, outside = image[mask > 0].mean(), image[mask == 0].mean()
        assert inside > outside + 40          # the shape is brighter than the background


def test_shapes_for_classification_and_segmentation():
    spec = spec_of("{source: shapes, samples: 60}", h=16, w=16, c=3, k=3)
    loaded = load(spec)
    assert loaded.classes == ["circle", "square", "triangle"] and loaded.task == "classification"
    seg = spec_of("{source: shapes, samples: 60}", h=16, w=16, c=3, k=4, segment=True)
    loaded = load(seg)
    assert loaded.task == "segmentation" and loaded.classes == ["background", "circle", "square", "triangle"]
    _, got = batches(loaded, seg)
    images, masks = got[0]
    assert images.shape == (8, 16, 16, 3) and masks.shape == (8, 16, 16) and masks.max() <= 3
    binary = spec_of("{source: shapes, samples: 20}", h=16, w=16, c=1, k=1, segment=True)
    _, got = batches(load(binary), binary)
    assert set(np.unique(got[0][1])) <= {0.0, 1.0} and got[0][1].shape == (8, 16, 16, 1)


def test_class_count_must_match_the_model():
    with pytest.raises(DataError, match=r"digits has 10 classes .* last layer has 4 outputs"):
        load(spec_of("digits", k=4))
    with pytest.raises(DataError, match="segmentation needs"):
        load(spec_of("digits", k=10, segment=True))


# ── directory ─────────────────────────────────────────────────────────────────────────────

def test_directory_of_class_folders_in_every_format(tmp_path):
    write_class_folders(tmp_path / "d", classes=3, per_class=8, suffixes=(".png", ".jpg", ".bmp", ".gif"))
    (tmp_path / "d" / "class_0" / "notes.txt").write_text("not an image")
    spec = spec_of(f"{{source: {tmp_path / 'd'}, validation_split: 0.25}}", k=3)
    loaded = load(spec)
    assert loaded.classes == ["class_0", "class_1", "class_2"]
    assert loaded.train.count + loaded.validation.count == 24 and loaded.validation.count == 6
    _, got = batches(loaded, spec)
    assert sum(len(b[1]) for b in got) == 18
    assert got[0][0].shape[1:] == (16, 16, 1)


def test_directory_mixed_grayscale_and_colour_files_convert_per_image(tmp_path):
    write_class_folders(tmp_path / "d", classes=2, per_class=4)
    Image.new("RGB", (10, 12), (200, 30, 30)).save(tmp_path / "d" / "class_1" / "colour.png")
    Image.new("RGBA", (9, 9), (20, 200, 30, 255)).save(tmp_path / "d" / "class_0" / "alpha.png")
    spec = spec_of(f"{{source: directory, path: {tmp_path / 'd'}, validation_split: 0}}", c=3, k=2)
    loaded = load(spec)
    assert loaded.train.count == 10 and loaded.validation is None
    _, got = batches(loaded, spec, batch=10)
    assert got[0][0].shape == (10, 16, 16, 3)


def test_corrupt_image_is_named_or_skipped(tmp_path):
    write_class_folders(tmp_path / "d", classes=2, per_class=4)
    bad = tmp_path / "d" / "class_1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"broken\.png: not a readable png/jpg/bmp/gif image: "):
        load(spec_of(str(tmp_path / "d"), k=2))
    loaded = load(spec_of(f"{{source: {tmp_path / 'd'}, on_bad: skip}}", k=2))
    assert loaded.train.count + loaded.validation.count == 8
    assert [f for f, _ in loaded.skipped] == [str(bad)]


def test_empty_class_folder_and_missing_path(tmp_path):
    write_class_folders(tmp_path / "d", classes=2, per_class=3)
    (tmp_path / "d" / "class_2").mkdir()
    with pytest.raises(DataError, match=r"class_2: class folder 'class_2' has no images"):
        load(spec_of(str(tmp_path / "d"), k=3))
    with pytest.raises(DataError, match=r"nowhere: no such folder"):
        load(spec_of(str(tmp_path / "nowhere"), k=3))


def test_image_whose_channels_do_not_fit(tmp_path):
    write_class_folders(tmp_path / "d", classes=2, per_class=3)
    Image.new("LA", (8, 8), (100, 255)).save(tmp_path / "d" / "class_0" / "two_channels.png")
    with pytest.raises(DataError, match=r"two_channels\.png: has 2 channels; the spec's input has 3"):
        load(spec_of(str(tmp_path / "d"), c=3, k=2))


def test_directory_segmentation_with_masks(tmp_path):
    images, _, masks = generate_shapes(6, 20, 20, 3, seed=1)
    for folder in ("images", "masks"):
        (tmp_path / "s" / folder).mkdir(parents=True)
    for i in range(6):
        Image.fromarray(images[i]).save(tmp_path / "s" / "images" / f"{i}.jpg")
        Image.fromarray(masks[i]).save(tmp_path / "s" / "masks" / f"{i}.png")
    spec = spec_of(f"{{source: {tmp_path / 's'}, validation_split: 0}}", h=10, w=10, c=3, k=4, segment=True)
    loaded = load(spec)
    assert loaded.train.count == 6 and loaded.train.columns["label"].shape == (6, 10, 10)
    _, got = batches(loaded, spec, batch=6)
    assert got[0][1].shape == (6, 10, 10) and got[0][1].max() <= 3
    # a mask value that is not a class of the model
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(tmp_path / "s" / "masks" / "0.png")
    with pytest.raises(DataError, match=r"masks/0\.png: mask value 7 is not a class of the model's 4 outputs"):
        load(spec)


# ── npz ───────────────────────────────────────────────────────────────────────────────────

def test_npz_arrays_and_class_names(tmp_path):
    images, labels = digit_images(50)
    np.savez(tmp_path / "d.npz", x=images, y=labels, classes=np.array([f"digit {i}" for i in range(10)]))
    spec = spec_of(str(tmp_path / "d.npz"))
    loaded = load(spec)
    assert loaded.classes[3] == "digit 3" and loaded.train.count == 40
    _, got = batches(loaded, spec)
    assert got[0][0].shape == (8, 16, 16, 1)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 12, 2])), r"d\.npz: y\[2\] = 12 is not a class"),
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, -1, 1, 2])), r"y\[1\] = -1 is not a class"),
    (dict(x=np.zeros((4, 8, 8, 2), np.uint8), y=np.zeros(4, int)), r"x: images have 2 channels; the spec's input has 1"),
    (dict(images=np.zeros((4, 8, 8), np.uint8)), r"has no array 'x' \(it has: images\)"),
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, int)), r"x has 4 images but y has 3 labels"),
    (dict(x=np.full((4, 8, 8), 300.0), y=np.zeros(4, int)), r"x values must be 0…255"),
    (dict(x=np.array([None] * 4, dtype=object), y=np.zeros(4, int)), r"holds Python objects"),
])
def test_bad_npz_is_named(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load(spec_of(str(tmp_path / "d.npz")))


def test_npz_skip_counts_bad_labels_and_missing_or_damaged_files(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 8, 8), np.uint8), y=np.array([0, 1, 99, 2, 3, 4, 5, 6, 7, 8]))
    loaded = load(spec_of(f"{{source: {tmp_path / 'd.npz'}, on_bad: skip}}"))
    assert loaded.train.count + loaded.validation.count == 9 and len(loaded.skipped) == 1
    with pytest.raises(DataError, match=r"missing\.npz: no such file"):
        load(spec_of(str(tmp_path / "missing.npz")))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"bad\.npz: cannot be read as \.npz"):
        load(spec_of(str(tmp_path / "bad.npz")))


# ── tfrecord ──────────────────────────────────────────────────────────────────────────────

def write_records(path, count, image_key="image", label_key="label", corrupt=()):
    import tensorflow as tf
    images, labels = digit_images(count)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(count):
            encoded = tf.io.encode_png(images[i][..., None]).numpy() if i not in corrupt else b"not a png"
            example = tf.train.Example(features=tf.train.Features(feature={
                image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(labels[i])]))}))
            writer.write(example.SerializeToString())


def test_tfrecord_with_configurable_feature_names(tmp_path):
    write_records(tmp_path / "a.tfrecord", 12, "picture", "digit")
    write_records(tmp_path / "b.tfrecord", 8, "picture", "digit")
    spec = spec_of(f"{{source: tfrecord, path: '{tmp_path}/*.tfrecord', image_feature: picture, label_feature: digit, "
                   "validation_split: 0.25}")
    loaded = load(spec)
    assert loaded.train.count == 15 and loaded.validation.count == 5
    _, got = batches(loaded, spec)
    assert got[0][0].shape == (8, 16, 16, 1) and got[0][1].max() <= 9


def test_tfrecord_bad_record_is_named_or_skipped(tmp_path):
    write_records(tmp_path / "a.tfrecord", 6, corrupt=(4,))
    with pytest.raises(DataError, match=r"a\.tfrecord: record 4: cannot be read"):
        load(spec_of(str(tmp_path / "a.tfrecord")))
    loaded = load(spec_of(f"{{source: {tmp_path / 'a.tfrecord'}, on_bad: skip, validation_split: 0}}"))
    assert loaded.train.count == 5 and loaded.skipped[0][0].endswith("record 4")
    with pytest.raises(DataError, match="cannot be read"):
        load(spec_of(f"{{source: {tmp_path / 'a.tfrecord'}, label_feature: nope}}"))


# ── tfds ──────────────────────────────────────────────────────────────────────────────────

def test_tfds_offline_from_a_prepared_data_dir(tmp_path):
    """A dataset prepared once into data_dir (here by a tiny builder the test defines) is read
    offline by name; an unprepared one is an error, not a download."""
    import tensorflow_datasets as tfds
    images, labels = digit_images(30)

    class TinyDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=[f"d{i}" for i in range(10)])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 24), "test": self._generate_examples(24, 30)}

        def _generate_examples(self, start, stop):
            for i in range(start, stop):
                yield i, {"image": images[i][..., None], "label": int(labels[i])}

    TinyDigits(data_dir=str(tmp_path)).download_and_prepare()
    spec = spec_of(f"{{source: tfds, name: tiny_digits, data_dir: {tmp_path}, "
                   f"validation: {{source: tfds, name: tiny_digits, data_dir: {tmp_path}, split: test}}}}")
    loaded = load(spec)
    assert loaded.classes[0] == "d0" and loaded.train.count == 24 and loaded.validation.count == 6
    pipeline, got = batches(loaded, spec)
    assert sum(len(b[1]) for b in got) == 24 and got[0][0].shape == (8, 16, 16, 1)
    assert sum(len(b[1]) for b in pipeline.validation().as_numpy_iterator()) == 6
    held = load(spec_of(f"{{source: 'tfds:tiny_digits', data_dir: {tmp_path}, validation_split: 0.25}}"))
    assert held.train.count == 18 and held.validation.count == 6
    _, got = batches(held, spec)
    assert sum(len(b[1]) for b in got) == 18
    with pytest.raises(DataError, match="not found|not prepared"):
        load(spec_of(f"{{source: tfds, name: mnist, data_dir: {tmp_path / 'empty'}}}"))


# ── spec errors for the data section ──────────────────────────────────────────────────────

@pytest.mark.parametrize("data, message", [
    ("digts", r"test\.yaml:\d+:7: data: unknown data source 'digts'"),
    ("{source: npz}", r"data source 'npz' needs a path"),
    ("{source: digits, path: x}", r"'path' is for directory, npz and tfrecord sources"),
    ("{source: tfds}", r"needs a dataset name"),
    ("{source: digits, validation_split: 1.5}", r"'validation_split' must be < 1"),
    ("{source: digits, validation_split: 0.1, validation: {source: digits}}", r"either 'validation_split' or"),
    ("{source: digits, on_bad: ignore}", r"'on_bad' must be one of error, skip"),
    ("{source: digits, colour: red}", r"unknown argument 'colour'"),
    ("{source: digits, cache: disc}", r"'cache' must be one of auto, memory, disk; got 'disc'\n  hint: did you mean 'disk'"),
    ("{source: digits, shuffle_buffer: 0}", r"'shuffle_buffer' must be >= 1"),
    ("{source: digits, cache_budget: -5}", r"'cache_budget' must be"),
])
def test_bad_data_section_is_a_spec_error(data, message):
    from cnnbuild import SpecError
    with pytest.raises(SpecError, match=message):
        spec_of(data)


def test_source_paths_choose_their_kind():
    assert spec_of("data/train.npz").data.kind == "npz"
    assert spec_of("'data/*.tfrec'").data.kind == "tfrecord"
    assert spec_of("'tfds:mnist'").data.location == "mnist"
    assert spec_of("flowers").data.kind == "directory"
