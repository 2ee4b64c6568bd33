"""`tfds`: a prepared tensorflow-datasets dataset (`source: tfds:mnist`, or `source: tfds`
with `name:`), downloaded only when `download: true` asks."""
from __future__ import annotations

import io
import os

from ..errors import Invalid, first_line
from .common import DataError, Packing, Part, Reading, SourceKind
from .images import image_header, png_bytes
from .tfrecord import selected


def where(source, written):
    """The dataset's name: after `tfds:`, else `name:`."""
    return written or source.name


def rules(source) -> None:
    if not source.location:
        raise Invalid("data source 'tfds' needs a dataset name", "add 'name: mnist', or write source: tfds:mnist")


def pack(name, size, data_dir=None, split="train") -> Packing:
    """A prepared tfds dataset's split, streamed once in its stored order; nothing is
    downloaded. Images stay encoded as tfds stored them (PNG or JPEG) unless `size` asks to
    resize."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("packing a tfds dataset needs the tensorflow-datasets package") from None
    where = f" in {data_dir}" if data_dir else ""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:      # DatasetNotFoundError and friends
        raise DataError(f"tfds dataset '{name}' not found{where}: {first_line(str(e))}") from None
    if not prepared:
        raise DataError(f"tfds dataset '{name}' is not prepared{where}\n  hint: prepare it once with the tfds CLI "
                        "(tfds build NAME --data_dir DIR), or give --data-dir where it is")
    info = builder.info
    if split not in info.splits:
        raise DataError(f"tfds dataset '{name}' has no split '{split}' (it has: {', '.join(info.splits)})")
    image = info.features["image"] if "image" in info.features else None
    label = info.features["label"] if "label" in info.features else None
    if not isinstance(image, tfds.features.Image) or not hasattr(label, "names"):
        raise DataError(f"tfds dataset '{name}': pack needs an 'image' feature (an Image) and a 'label' feature "
                        f"(a ClassLabel); it has: {', '.join(info.features)}")
    # the images stay encoded as tfds stored them (PNG or JPEG) unless --size asks to resize
    records = builder.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})

    def items():
        from PIL import Image
        for example in records.as_numpy_iterator():
            encoded, number = example["image"], int(example["label"])
            channels, reason = image_header(io.BytesIO(encoded))
            if reason is not None:
                raise DataError(f"tfds dataset '{name}' {split}: {reason}")
            if size is not None:
                with Image.open(io.BytesIO(encoded)) as opened:
                    encoded, channels = png_bytes(opened.convert("RGB" if channels >= 3 else "L"), size), min(channels, 3)
            yield encoded, number, channels
    return Packing(list(label.names), info.splits[split].num_examples, stream=items())


def read(data, reading: Reading, seed) -> Part:
    """A prepared tensorflow-datasets dataset, downloaded only when asked."""
    import numpy as np
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("data source tfds needs the tensorflow-datasets package: pip install tensorflow-datasets") from None
    try:
        builder = tfds.builder(data.location, data_dir=data.data_dir)
    except Exception as e:    # DatasetNotFoundError and friends
        raise DataError(f"tfds dataset '{data.location}' not found{' in ' + data.data_dir if data.data_dir else ''}: "
                        f"{first_line(str(e))}") from None
    where = data.data_dir or "tfds's data_dir"
    if not _tfds_prepared(builder):
        if not data.download:
            raise DataError(f"tfds dataset '{data.location}' is not prepared in {where}\n  hint: set data.download: "
                            "true to download it once (needs the network), or prepare it with the tfds CLI")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise DataError(f"tfds dataset '{data.location}' could not be downloaded: {first_line(str(e))}") from None
    info = builder.info
    if data.split not in info.splits:
        raise DataError(f"tfds dataset '{data.location}' has no split '{data.split}' "
                        f"(it has: {', '.join(info.splits)})")
    feature_name = data.mask_feature if reading.task == "segmentation" else data.label_feature
    for name in (data.image_feature, feature_name):
        if name not in info.features:
            raise DataError(f"tfds dataset '{data.location}' has no feature '{name}' "
                            f"(it has: {', '.join(info.features)})\n  hint: set data.image_feature / "
                            f"data.{'mask' if reading.task == 'segmentation' else 'label'}_feature")
    classes = [str(i) for i in range(reading.labels)]
    label = info.features[data.label_feature] if data.label_feature in info.features else None
    if reading.task == "classification" and hasattr(label, "names"):
        classes = list(label.names)
        reading.classes_must_match(f"tfds dataset '{data.location}'", classes)
    image = info.features[data.image_feature]
    if getattr(image, "shape", None) and image.shape[-1] is not None:
        reading.check_channels(f"tfds dataset '{data.location}'", image.shape[-1])
    total = info.splits[data.split].num_examples
    # the images stay encoded until after the shuffle (tfds would decode them as it reads)
    encoded = isinstance(image, tfds.features.Image)
    decoders = {data.image_feature: tfds.decode.SkipDecoding()} if encoded else None
    split = builder.as_dataset(split=data.split, shuffle_files=False, decoders=decoders)
    split = split.map(lambda example: (example[data.image_feature], example[feature_name]))

    def kept(columns, order_seed=None):
        """The split's items at the selected positions (all of them unless split for validation)."""
        return selected(split, columns["position"], total)

    def decode(item, label):
        import tensorflow as tf
        if not encoded:
            return item, label
        return tf.io.decode_image(item, channels=0, expand_animations=False, dtype=tf.uint8), label
    return Part({"position": np.arange(total)}, classes, decode=decode, stream=kept)


def _tfds_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:
        return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))


KIND = SourceKind("tfds", example="tfds:mnist", read=read, where=where, prefix="tfds:", rules=rules, pack=pack)
