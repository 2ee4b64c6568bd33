"""Datasets larger than memory: files streamed through tf.data, never all decoded or kept;
`cache: auto | memory | disk | false`; a bounded, seeded, resumable shuffle; a file whose
pixels are damaged behind a good header skipped and counted while training; data errors
answered before TensorFlow is imported; `cnnbuild data pack` → train → export.

The streaming test measures rather than assumes: it reads the bytes this process has read
from files (the kernel's `rchar` in /proc/self/io) while iterating the pipeline."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnbuild import infer, parse_spec
from cnnbuild.cli import main
from cnnbuild.sources import DataError
from cnnbuild.train.data import load_data
from cnnbuild.train.pipeline import Pipeline

SPEC = """\
name: stream
input: [{size}, {size}, 3]
layers:
  - conv: {{filters: 4, kernel: 3, activation: relu}}
  - global_avg_pool
  - dense: {{units: {classes}, activation: softmax}}
data: {data}
train: {{epochs: {epochs}, batch_size: 32}}
"""


def spec_of(data, size=16, classes=3, epochs=1):
    return parse_spec(SPEC.format(size=size, classes=classes, data=data, epochs=epochs), "test.yaml")


def write_folders(root, per_class, classes=3, size=24, seed=0):
    """Class folders of random RGB PNG files; returns their total size in bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            path = folder / f"{i:05d}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            total += path.stat().st_size
    return total


def bytes_read() -> int:
    """Bytes this process (all its threads) has read with read(2) and friends: the kernel's count."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def load(spec):
    return load_data(spec, infer(spec).output)


@pytest.fixture(autouse=True)
def graph_seed():
    """As `cnnbuild train` does: a graph-level seed other than 0 (with 0, TensorFlow 2.21's
    get_seed cannot take the epoch's seed as a tensor inside flat_map)."""
    import tensorflow as tf
    tf.random.set_seed(1)


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_a_directory_larger_than_the_cache_budget_is_streamed_never_kept(tmp_path):
    total = write_folders(tmp_path / "d", per_class=1000)        # 3,000 files
    spec = spec_of(f"{{source: {tmp_path / 'd'}, validation_split: 0, cache_budget: 1}}")
    loaded = load(spec)
    assert loaded.train.count == 3000
    pipeline = Pipeline(loaded, spec.input, 32, seed=0, cache=spec.data.cache, cache_budget=1)
    # 3,000 × 16×16×3 uint8 = 2.2 MiB decoded, over the 1 MiB budget: no cache
    assert pipeline.cache.where == "none" and "exceeds the 1 MiB budget" in pipeline.describe()
    epochs = iter(pipeline.train_epochs(0, 2))
    before = bytes_read()
    next(epochs)
    first = bytes_read() - before
    assert first < total / 3, f"the first batch read {first:,} of {total:,} bytes: files were read ahead wholesale"
    for _ in range(93):                                          # the rest of epoch 1 (94 batches of 32)
        next(epochs)
    epoch_one = bytes_read() - before
    assert epoch_one >= total
    middle = bytes_read()
    batches = sum(1 for _ in epochs)
    assert batches == 94
    assert bytes_read() - middle >= 0.9 * total, "epoch 2 did not read the files again: they were kept"

    # the same data within the budget is cached in memory: epoch 2 reads (almost) nothing
    cached = Pipeline(loaded, spec.input, 32, seed=0, cache="auto", cache_budget=100)
    assert cached.cache.where == "memory" and "fits the 100 MiB budget" in cached.describe()
    epochs = iter(cached.train_epochs(0, 2))
    for _ in range(94):
        next(epochs)
    middle = bytes_read()
    assert sum(1 for _ in epochs) == 94
    assert bytes_read() - middle < total / 10


def test_cache_modes_give_the_same_images(tmp_path):
    write_folders(tmp_path / "d", per_class=20, size=16)
    spec = spec_of(f"{{source: {tmp_path / 'd'}, validation_split: 0}}")
    loaded = load(spec)
    sums = {}
    for cache in ("memory", "disk", False, "auto"):
        pipeline = Pipeline(loaded, spec.input, 8, seed=0, cache=cache, folder=tmp_path / f"run-{cache}")
        assert pipeline.cache.where == {"memory": "memory", "disk": "disk", False: "none", "auto": "memory"}[cache]
        epochs = list(pipeline.train_epochs(0, 2).as_numpy_iterator())
        assert len(epochs) == 16                                   # 60 images in batches of 8, twice
        sums[cache] = round(float(sum(batch[0].sum() for batch in epochs)), 1)
    assert len(set(sums.values())) == 1
    assert sorted(os.listdir(tmp_path / "run-disk" / "data-cache"))[:2] == ["train-uint8.data-00000-of-00001",
                                                                            "train-uint8.index"]


def test_the_uint8_cache_gives_the_batches_of_a_float32_pipeline(tmp_path):
    """The cache holds uint8 images, scaled per batch; the batches equal those of the float32
    chain the pipeline was before (written out below: every image through `preprocess` when
    decoded, cached, shuffled with the epoch's seed, batched): the same labels in the same
    order, the images within half a level (0.5/255: rounded, not cut). The files are of mixed
    sizes and kinds, so most are resized or converted (their float32 pixels are not whole
    levels); some fit the input as they are."""
    import tensorflow as tf

    from cnnbuild.preprocess import preprocess
    from cnnbuild.train.pipeline import SHUFFLE_SALT
    rng = np.random.default_rng(5)
    for i in range(45):
        folder = tmp_path / "d" / f"class_{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        height, width = (16, 16) if i % 5 == 1 else (int(rng.integers(9, 40)), int(rng.integers(9, 40)))  # some fit
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels[..., 0] if i % 4 == 0 else pixels).save(folder / f"{i:03d}.png")   # some grayscale
    spec = spec_of(f"{{source: {tmp_path / 'd'}, validation_split: 0.2}}")
    loaded = load(spec)
    seed, batch, epochs = 7, 8, 2
    pipeline = Pipeline(loaded, spec.input, batch, seed=seed, cache="auto")
    assert pipeline.cache.where == "memory" and pipeline.train_base.element_spec[0].dtype == tf.uint8

    def float32_items(part):
        return part.dataset().map(lambda x, y: (preprocess(x[None], spec.input)[0], tf.cast(y, tf.int32))).cache()
    train = float32_items(loaded.train)
    expected = [b for epoch in range(epochs)
                for b in train.shuffle(loaded.train.count, seed=seed * SHUFFLE_SALT + epoch,
                                       reshuffle_each_iteration=False).batch(batch).as_numpy_iterator()]
    expected += list(float32_items(loaded.validation).batch(batch).as_numpy_iterator())
    got = list(pipeline.train_epochs(0, epochs).as_numpy_iterator()) + list(pipeline.validation().as_numpy_iterator())
    assert len(got) == len(expected) == 2 * 5 + 2                 # 36 training images in batches of 8, twice; 9 held out
    for (images, labels), (want_images, want_labels) in zip(got, expected):
        assert images.dtype == np.float32 and images.shape == want_images.shape
        np.testing.assert_array_equal(labels, want_labels)
        assert np.abs(images - want_images).max() <= 0.5 / 255 + 1e-6   # rounded: within half a level
    resized = np.concatenate([want for want, _ in expected])
    assert np.mean(np.abs(resized * 255 - np.round(resized * 255)) > 0.01) > 0.5   # most pixels were not whole levels


def test_the_shuffle_is_bounded_seeded_by_epoch_and_the_same_after_a_resume(tmp_path):
    # image i has every pixel = i, so the order can be read back from the pixels
    count = 60
    x = np.repeat(np.arange(count, dtype=np.uint8), 16 * 3).reshape(count, 4, 4, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(count) % 3)

    def order(shuffle_buffer, epoch):
        spec = spec_of(f"{{source: {tmp_path / 'd.npz'}, validation_split: 0, shuffle_buffer: {shuffle_buffer}}}", size=4)
        pipeline = Pipeline(load(spec), spec.input, count, seed=7, shuffle_buffer=spec.data.shuffle_buffer)
        images = next(pipeline.train_epoch(epoch).as_numpy_iterator())[0]
        return [int(round(v)) for v in images[:, 0, 0, 0] * 255]
    bounded = order(4, 0)
    assert sorted(bounded) == list(range(count))
    # with a buffer of 4, the k-th image out is one of the first k + 4 in
    assert all(i < k + 4 for k, i in enumerate(bounded))
    whole = order(10_000, 3)
    assert whole == order(10_000, 3) and whole != order(10_000, 2)    # a resumed run sees epoch 3's order again
    assert max(i - k for k, i in enumerate(whole)) > 4


def test_image_headers_parsed_directly_agree_with_pil(tmp_path):
    """The header scan parses PNG, JPEG, GIF and plain BMP itself; PIL (its Image.open reads
    no pixels either) is the reference for the channels, and words the reason for the rest."""
    from cnnbuild.sources.images import image_header, parsed_channels, pil_header
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    exif = Image.Exif()
    exif[0x010E] = "x" * 9000                                  # a 9 kB description: the frame header lies past 4 kB
    files = {"L.png": rgb.convert("L"), "LA.png": rgb.convert("LA"), "RGB.png": rgb, "RGBA.png": rgb.convert("RGBA"),
             "P.png": palette, "1.png": rgb.convert("1"), "I16.png": rgb.convert("L").convert("I;16"),
             "L.jpg": rgb.convert("L"), "RGB.jpg": rgb, "CMYK.jpg": rgb.convert("CMYK"), "RGB.gif": palette,
             "RGB.bmp": rgb, "P.bmp": palette, "RGB.tiff": rgb, "RGB.webp": rgb}
    for name, image in files.items():
        image.save(tmp_path / name)
    palette.save(tmp_path / "Ptrns.png", transparency=0)
    rgb.save(tmp_path / "progressive.jpg", progressive=True)
    rgb.save(tmp_path / "exif.jpg", exif=exif)
    (tmp_path / "cut.png").write_bytes((tmp_path / "RGB.png").read_bytes()[:20])
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    parsed = set()
    for path in sorted(tmp_path.iterdir()):
        assert image_header(path) == pil_header(path), path.name
        with open(path, "rb") as file:
            if parsed_channels(file) is not None:
                parsed.add(path.name)
        assert image_header(io.BytesIO(path.read_bytes())) == pil_header(path), path.name   # a record's bytes
    # all but a palette BMP (left to PIL), TIFF and WebP (not TensorFlow's) and the three broken files
    assert parsed == set(os.listdir(tmp_path)) - {"P.bmp", "RGB.tiff", "RGB.webp", "cut.png", "text.png", "empty.jpg"}
    assert image_header(tmp_path / "Ptrns.png") == (4, None) and image_header(tmp_path / "CMYK.jpg") == (4, None)
    assert "it is a TIFF file" in image_header(tmp_path / "RGB.tiff")[1]


@pytest.mark.parametrize("cache", ["auto", "false"])
def test_a_file_with_damaged_pixels_is_skipped_and_counted_while_training(tmp_path, capsys, cache):
    write_folders(tmp_path / "d", per_class=20, size=16)
    damaged = tmp_path / "d" / "class_1" / "00003.png"
    data = damaged.read_bytes()
    damaged.write_bytes(data[:len(data) // 2])                 # the header intact, the pixels cut off
    with Image.open(damaged) as image:                        # what the up-front check sees: a fine header
        assert image.size == (16, 16)
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(size=16, classes=3, epochs=2,
                                data=f"{{source: {tmp_path / 'd'}, validation_split: 0, cache: {cache}}}"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"input: parallel decode (AUTOTUNE), cache {'memory' if cache == 'auto' else 'none'}" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all(line.endswith("img/s  1 corrupt file skipped") for line in epoch_lines), out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["corrupt_skipped_per_epoch"] == 1


@pytest.mark.parametrize("make, data, message", [
    (lambda root: None, "nowhere", r"nowhere: no such folder"),
    (lambda root: write_folders(root / "d", per_class=2, classes=2), "d", r"has 2 classes \(class_0, class_1\), but the "
                                                                         r"model's last layer has 3 outputs"),
    (lambda root: (write_folders(root / "d", per_class=2, classes=2), (root / "d" / "empty").mkdir()), "d",
     r"empty: class folder 'empty' has no images"),
    (lambda root: None, "digits", r"digits has 10 classes"),
    (lambda root: None, "none.npz", r"none\.npz: no such file"),
])
def test_data_errors_are_answered_before_tensorflow_is_imported(tmp_path, make, data, message):
    import re
    make(tmp_path)
    (tmp_path / "net.yaml").write_text(SPEC.format(size=16, classes=3, epochs=1, data="digits"))
    code = ("import sys; from cnnbuild.cli import main; status = main(sys.argv[1:]); "
            "print('tensorflow imported' if 'tensorflow' in sys.modules else 'tensorflow not imported', status)")
    done = subprocess.run([sys.executable, "-c", code, "train", "net.yaml", "--data", data], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[-2] == "tensorflow not imported 1", done.stdout + done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_check_reports_the_data_section_s_files(tmp_path, capsys):
    write_folders(tmp_path / "d", per_class=2, classes=2)
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(size=16, classes=3, epochs=1, data=str(tmp_path / "d")))
    assert main(["check", str(spec)]) == 1
    assert "has 2 classes (class_0, class_1), but the model's last layer has 3 outputs" in capsys.readouterr().err
    spec.write_text(SPEC.format(size=16, classes=3, epochs=1, data="digits"))   # names no files: the model alone
    assert main(["check", str(spec)]) == 0


def test_a_folder_named_like_a_source_kind_is_read_as_the_folder(tmp_path, monkeypatch):
    write_folders(tmp_path / "shapes_png", per_class=3, size=16)
    monkeypatch.chdir(tmp_path)
    spec = spec_of("./shapes_png")           # a path: the folder
    assert spec.data.kind == "directory"
    assert load(spec).classes == ["class_0", "class_1", "class_2"]
    # a bare word this close to a kind is a misspelling, the folder there or not: the parser
    # reads no disk, and says how to name the folder
    with pytest.raises(Exception, match=r"did you mean 'shapes'\? \(a folder named like that: write \./shapes_png\)"):
        spec_of("shapes_png")


def test_pack_then_train_then_export(tmp_path, capsys):
    write_folders(tmp_path / "d", per_class=30, size=20)
    (tmp_path / "d" / "class_2" / "broken.png").write_bytes(b"not an image")
    assert main(["data", "pack", str(tmp_path / "d"), "--out", str(tmp_path / "packed"), "--shards", "3",
                 "--size", "16", "16"]) == 0
    assert "90 images, 3 classes, 3 shards, 1 unreadable files left out" in capsys.readouterr().out
    index = json.loads((tmp_path / "packed" / "index.json").read_text())
    assert index["classes"] == ["class_0", "class_1", "class_2"] and index["image_size"] == [16, 16]
    assert index["channel_counts"] == [3]                      # every image RGB: decoded with 3 channels fixed
    assert [s["count"] for s in index["shards"]] == [30, 30, 30]
    import tensorflow as tf
    labels = [tf.train.Example.FromString(raw.numpy()).features.feature["label"].int64_list.value[0]
              for raw in tf.data.TFRecordDataset([str(tmp_path / "packed" / s["file"]) for s in index["shards"]])]
    assert sorted(labels) == [0] * 30 + [1] * 30 + [2] * 30   # every image once, read back from the shards
    assert len(set(labels[:30])) == 3                         # shuffled: a shard holds every class

    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(size=16, classes=3, epochs=1, data=str(tmp_path / "packed")))
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_images"] + metrics["validation_images"] == 90
    assert main(["data", "bench", str(spec), "--batches", "3"]) == 0
    assert "images/second" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "run"), "--format", "keras", "--out", str(tmp_path / "export")]) == 0
    assert "verified with keras.saving.load_model" in capsys.readouterr().out
    assert (tmp_path / "export" / "model.keras").is_file()


def test_a_tfds_dataset_is_packed_from_its_data_dir_and_trained_on(tmp_path, capsys):
    """tfds's own builder API prepares a tiny dataset into a local data_dir (offline); pack
    reads it there, spreads it over the shards, and training reads the shards."""
    import tensorflow_datasets as tfds
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (45, 16, 16, 3), dtype=np.uint8)

    class TinyColours(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(16, 16, 3)),
                "label": tfds.features.ClassLabel(names=["red", "green", "blue"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(45):
                yield i, {"image": images[i], "label": i // 15}     # stored sorted by class
    TinyColours(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    assert main(["data", "pack", "tfds:tiny_colours", "--data-dir", str(tmp_path / "tfds"),
                 "--out", str(tmp_path / "packed"), "--shards", "3"]) == 0
    assert "45 images, 3 classes, 3 shards" in capsys.readouterr().out
    index = json.loads((tmp_path / "packed" / "index.json").read_text())
    assert index["classes"] == ["red", "green", "blue"] and [s["count"] for s in index["shards"]] == [15, 15, 15]
    import tensorflow as tf
    shard_labels = [[tf.train.Example.FromString(raw.numpy()).features.feature["label"].int64_list.value[0]
                     for raw in tf.data.TFRecordDataset(str(tmp_path / "packed" / s["file"]))] for s in index["shards"]]
    assert sorted(sum(shard_labels, [])) == [0] * 15 + [1] * 15 + [2] * 15
    assert all(len(set(labels)) == 3 for labels in shard_labels)     # each shard a mix of the classes
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(size=16, classes=3, epochs=1, data=f"{{source: {tmp_path / 'packed'}, validation_split: 0}}"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_images"] == 45
    assert main(["data", "pack", "tfds:tiny_colours", "--data-dir", str(tmp_path / "none"), "--out",
                 str(tmp_path / "p2")]) == 1
    assert "tfds dataset 'tiny_colours' is not prepared in" in capsys.readouterr().err and not (tmp_path / "p2").exists()


def test_records_are_shuffled_before_decoding_seeded_by_epoch(tmp_path):
    """A packed source: each epoch reads every record once, in an order seeded by the epoch
    (shard order, 4 shards interleaved, a buffer of encoded records)."""
    from cnnbuild.sources import pack
    count = 48
    x = np.repeat(np.arange(count, dtype=np.uint8) * 5, 16 * 3).reshape(count, 4, 4, 3)   # image i: every pixel 5·i
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(count) % 3)
    pack(tmp_path / "d.npz", tmp_path / "packed", shards=6, progress=lambda done, total: None)
    spec = spec_of(f"{{source: {tmp_path / 'packed'}, validation_split: 0, shuffle_buffer: 8}}", size=4)
    pipeline = Pipeline(load(spec), spec.input, count, seed=3, cache=False, shuffle_buffer=spec.data.shuffle_buffer)
    assert "shuffle buffer 8 encoded records" in pipeline.describe()

    def order(epoch):
        images = next(pipeline.train_epoch(epoch).as_numpy_iterator())[0]
        return [int(round(v * 255 / 5)) for v in images[:, 0, 0, 0]]
    first = order(0)
    assert sorted(first) == list(range(count))
    assert first == order(0) and first != order(1)                  # a resumed run sees epoch 1's order again


def test_a_pack_that_stops_leaves_no_folder(tmp_path):
    from cnnbuild.sources import pack
    write_folders(tmp_path / "d", per_class=400, size=8)

    def interrupted(done, total):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        pack(tmp_path / "d", tmp_path / "packed", shards=2, progress=interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]          # neither the folder nor its working copy
    with pytest.raises(DataError, match="already exists"):
        (tmp_path / "packed").mkdir()
        pack(tmp_path / "d", tmp_path / "packed")
    assert not Path(tmp_path / "packed" / "index.json").exists()


def test_each_worker_reads_its_own_shards_and_together_all(tmp_path, capsys):
    from cnnbuild.sources import pack
    count = 40
    x = np.repeat(np.arange(count, dtype=np.uint8) * 5, 16 * 3).reshape(count, 4, 4, 3)   # image i: every pixel 5·i
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(count) % 3)

    def seen(shards, worker):
        folder = tmp_path / f"packed-{shards}"
        if not folder.exists():
            pack(tmp_path / "d.npz", folder, shards=shards, progress=lambda done, total: None)
        spec = spec_of(f"{{source: {folder}, validation_split: 0}}", size=4)
        pipeline = Pipeline(load(spec), spec.input, 8, seed=0)
        batches = list(pipeline.train_epoch(0, shard=(2, worker, 4)).as_numpy_iterator())
        assert len(batches) == count // 2 // 4                         # the same steps on both workers
        return [int(round(v * 255 / 5)) for b in batches for v in b[0][:, 0, 0, 0]]
    first, second = seen(4, 0), seen(4, 1)
    assert not set(first) & set(second) and sorted(first + second) == list(range(count))
    assert "warning" not in capsys.readouterr().err
    # one shard for two workers: said, and shared by data (each keeps every other image of one order)
    first, second = seen(1, 0), seen(1, 1)
    assert "1 record file for 2 workers" in capsys.readouterr().err
    assert not set(first) & set(second) and sorted(first + second) == list(range(count))
