"""Augmentations: every registered kind runs, is seeded, keeps masks aligned with images,
and the spec checker refuses impossible ones with file:line:column."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf   # plainly: a broken install must fail these tests, not skip them

from cnnbuild import SpecError, parse_spec
from cnnbuild.augment import AUGMENTATIONS, Augmentation, augmentation, make_augment
from cnnbuild.parse.sections import parse_augment
from cnnbuild.sources.shapes import generate_shapes

# one example of each kind, as a user writes it; a kind not listed runs with its defaults
# (`- kind`), so a new augmentation is covered by the registry tests below without a change here
EXAMPLES = {
    "flip": "- flip: both", "rotate": "- rotate: 30", "translate": "- translate: 0.2", "zoom": "- zoom: 0.3",
    "shear": "- shear: 0.2", "crop": "- crop: {padding: 4, size: 20}", "contrast": "- contrast: 0.5", "brightness": "- brightness: 0.3",
    "cutout": "- cutout: {size: 6, count: 2}", "mixup": "- mixup: 0.4", "cutmix": "- cutmix",
}
GEOMETRIC = sorted(kind for kind, cls in AUGMENTATIONS.items() if cls.geometric)


def ops(text, input_shape=(24, 24, 3)):
    spec = parse_spec(f"name: n\ninput: {list(input_shape)}\nlayers: [flatten]\naugment:\n  {text}\n", "aug.yaml")
    return spec.augment


def example(kind, input_shape=(24, 24, 3)):
    try:
        return ops(EXAMPLES.get(kind, f"- {kind}"), input_shape)
    except SpecError as e:
        pytest.fail(f"augmentation '{kind}' needs arguments: add an example for it to EXAMPLES ({e})")


def batch(n=8, size=24, channels=3, seed=0):
    images, labels, masks = generate_shapes(n, size, size, channels, seed)
    return tf.constant(images, tf.float32) / 255.0, labels, masks


def test_the_registry_holds_each_kind_once_with_its_step():
    """One registry: each kind's dataclass is its own TensorFlow step (apply), and a kind
    without one is refused when it is registered, not when a run reaches it."""
    assert {"flip", "rotate", "translate", "zoom", "crop", "contrast", "brightness", "cutout", "mixup",
            "cutmix"} <= set(AUGMENTATIONS)                                  # the list
    for kind, cls in AUGMENTATIONS.items():
        assert cls.kind == kind and not cls.__abstractmethods__
    with pytest.raises(TypeError, match=r"augmentation 'blur' \(Blur\) does not implement apply\(\): write its "
                                        r"TensorFlow step beside its dataclass"):
        @augmentation("blur")
        @dataclass(frozen=True)
        class Blur(Augmentation):
            radius: int = 1
    with pytest.raises(ValueError, match="augmentation 'flip' is registered twice"):
        augmentation("flip")(AUGMENTATIONS["flip"])
    assert "blur" not in AUGMENTATIONS


@pytest.mark.parametrize("kind", sorted(AUGMENTATIONS))
def test_each_augmentation_changes_images_reproducibly(kind):
    images, labels, _ = batch()
    onehot = tf.one_hot(labels, 3)
    augment = make_augment(example(kind), (24, 24, 3), "classification")
    seed = tf.constant([7, 1], tf.int64)
    out, out_labels = augment(images, onehot, seed)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= -1e-6 and float(tf.reduce_max(out)) <= 1 + 1e-6
    assert not np.allclose(out.numpy(), images.numpy())
    again, again_labels = augment(images, onehot, seed)
    assert np.array_equal(out.numpy(), again.numpy()) and np.array_equal(out_labels.numpy(), again_labels.numpy())
    other, _ = augment(images, onehot, tf.constant([7, 2], tf.int64))
    assert not np.array_equal(out.numpy(), other.numpy())
    np.testing.assert_allclose(out_labels.numpy().sum(axis=1), 1.0, rtol=1e-5)   # still a distribution


def test_all_augmentations_chained_in_a_tf_data_graph():
    """As the pipeline runs them: in a tf.data map (graph mode), one after another."""
    images, labels, masks = batch(n=16)
    chain = tuple(op for kind in sorted(AUGMENTATIONS) for op in example(kind))
    augment = make_augment(chain, (24, 24, 3), "segmentation", (24, 24))
    data = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(masks, 4))).batch(8).enumerate()
    data = data.map(lambda i, b: augment(b[0], b[1], tf.stack([tf.constant(1, tf.int64), i])))
    for out, out_masks in data:
        assert out.shape == (8, 24, 24, 3) and out_masks.shape == (8, 24, 24, 4)


def test_flip_mirrors_exactly():
    images, labels, _ = batch()
    out, _ = make_augment(ops("- flip"), (24, 24, 3), "classification")(images, labels, tf.constant([0, 0], tf.int64))
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out.numpy(), images.numpy())]
    same = [np.array_equal(o, i) for o, i in zip(out.numpy(), images.numpy())]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)


def test_pad_and_crop_is_a_window_of_the_padded_image():
    images, labels, _ = batch(n=6)
    out, _ = make_augment(ops("- crop: 3"), (24, 24, 3), "classification")(images, labels, tf.constant([3, 3], tf.int64))
    for o, i in zip(out.numpy(), images.numpy()):
        padded = np.pad(i, [(3, 3), (3, 3), (0, 0)])
        windows = [(dy, dx) for dy in range(7) for dx in range(7)
                   if np.allclose(padded[dy:dy + 24, dx:dx + 24], o, atol=1e-5)]
        assert windows, "each crop is an exact 24×24 window of the image padded by 3"


@pytest.mark.parametrize("kind", GEOMETRIC)
def test_geometric_augmentations_move_masks_with_images(kind):
    """Shapes are bright on a dark background: after the transform, the mask still marks the
    bright pixels, and it holds only class numbers (nearest neighbour, never blended)."""
    images, _, masks = batch(n=8, channels=1)
    text = {"rotate": "- rotate: {degrees: 40, fill: constant}", "translate": "- translate: {fraction: 0.2, fill: constant}",
            "zoom": "- zoom: {fraction: 0.3, fill: constant}"}.get(kind, EXAMPLES.get(kind, f"- {kind}"))
    augment = make_augment(ops(text, (24, 24, 1)), (24, 24, 1), "segmentation", (24, 24))
    out, out_masks = augment(images, tf.constant(masks, tf.int32), tf.constant([5, 9], tf.int64))
    out, out_masks = out.numpy()[..., 0], out_masks.numpy()
    assert out_masks.dtype == np.int32 and set(np.unique(out_masks)) <= {0, 1, 2, 3}
    assert not np.array_equal(out_masks, masks)
    for image, mask in zip(out, out_masks):
        if mask.any() and (mask == 0).any():
            assert image[mask > 0].mean() > image[mask == 0].mean() + 0.15


def test_photometric_augmentations_leave_masks_alone():
    images, _, masks = batch(channels=1)
    augment = make_augment(ops("- contrast: 0.5\n  - brightness: 0.2\n  - cutout: 5", (24, 24, 1)), (24, 24, 1),
                           "segmentation", (24, 24))
    _, out_masks = augment(images, tf.constant(masks, tf.int32), tf.constant([1, 1], tf.int64))
    assert np.array_equal(out_masks.numpy(), masks)


def distinct_batch(n=8, size=12):
    """Image k is the constant (k + 1)/20 and has class k: what each pixel and label is made of
    can be read back."""
    values = (np.arange(n) + 1) / 20
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (n, size, size, 1)), tf.float32)
    return images, tf.one_hot(np.arange(n), n), values


def test_mixup_blends_images_and_labels_with_the_same_weight():
    images, labels, values = distinct_batch()
    out, mixed = make_augment(ops("- mixup: 1.0", (12, 12, 1)), (12, 12, 1), "classification")(
        images, labels, tf.constant([2, 2], tf.int64))
    out, mixed = out.numpy(), mixed.numpy()
    np.testing.assert_allclose(out[..., 0], np.broadcast_to((mixed @ values)[:, None, None], out.shape[:3]), atol=1e-5)
    assert np.all((mixed > 0).sum(axis=1) <= 2) and np.any((mixed > 1e-3).sum(axis=1) == 2)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-5)


def test_cutmix_label_share_is_the_pasted_area():
    images, labels, values = distinct_batch()
    out, mixed = make_augment(ops("- cutmix: 1.0", (12, 12, 1)), (12, 12, 1), "classification")(
        images, labels, tf.constant([4, 4], tf.int64))
    out, mixed = out.numpy()[..., 0], mixed.numpy()
    for k, (image, label) in enumerate(zip(out, mixed)):
        shares = np.array([np.isclose(image, v).mean() for v in values])   # each image's share of the pixels
        np.testing.assert_allclose(label, shares, atol=1e-5)
    assert any(0 < label[k] < 1 for k, label in enumerate(mixed))


def test_cutmix_pastes_masks_for_segmentation():
    images, _, masks = batch(n=8, channels=1)
    dense = tf.one_hot(masks, 4)
    out, mixed = make_augment(ops("- cutmix: 1.0", (24, 24, 1)), (24, 24, 1), "segmentation", (24, 24))(
        images, dense, tf.constant([6, 6], tf.int64))
    # every pixel's label is one-hot: cut-and-paste moves whole pixels, it never blends them
    assert set(np.unique(mixed.numpy())) <= {0.0, 1.0}
    assert not np.array_equal(mixed.numpy(), dense.numpy())


def test_cutout_blanks_rectangles():
    images = tf.ones([4, 24, 24, 1])
    out, _ = make_augment(ops("- cutout: [6, 4]", (24, 24, 1)), (24, 24, 1), "classification")(images, tf.zeros([4]),
                                                                                          tf.constant([0, 3], tf.int64))
    for image in out.numpy()[..., 0]:
        blank = image == 0
        assert 0 < blank.sum() <= 24
        rows, cols = np.flatnonzero(blank.any(1)), np.flatnonzero(blank.any(0))
        assert len(rows) <= 6 and len(cols) <= 4


@pytest.mark.parametrize("text, message", [
    ("- crop: {size: 40}", r"aug\.yaml:5:11: augment\[0\]\.crop: size 40×40 is larger than the input 24×24"),
    ("- crop: {padding: 2, size: [30, 10]}", r"size 30×10 is larger than the input 24×24 padded by 2 on each side \(28×28\)"),
    ("- crop: {size: 24}", r"cropping the whole 24×24 input without padding changes nothing"),
    ("- cutout: 30", r"augment\[0\]\.cutout: size 30×30 is larger than the input"),
    ("- rotate: 400", r"'degrees' must be <= 180"),
    ("- flipp", r"unknown augmentation 'flipp'\n  hint: did you mean 'flip'\?"),
    ("- flip: sideways", r"'mode' must be one of horizontal, vertical, both"),
    ("- {flip: horizontal, rotate: 3}", r"an augmentation is a one-key mapping"),
    ("- zoom", r"missing required argument 'fraction'"),
])
def test_impossible_augmentations_are_spec_errors(text, message):
    with pytest.raises(SpecError, match=message):
        ops(text)


def test_augment_must_be_a_list():
    with pytest.raises(SpecError, match="'augment' must be a list"):
        parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten]\naugment: flip\n")
    assert parse_augment(None, (8, 8, 1), []) == ()


# ── consecutive transforms fused into one resample ─────────────────────────────────────────

FUSED_CHAIN = "- flip: both\n  - rotate: 20\n  - translate: 0.1\n  - zoom: 0.2\n  - shear: 0.1"


def photos(size=64):
    """Real photographs (scikit-learn's two sample images), shrunk to size × size, 0…1."""
    from sklearn.datasets import load_sample_images
    images = np.stack([tf.image.resize(image, (size, size), antialias=True).numpy() / 255.0
                       for image in load_sample_images().images]).astype(np.float32)
    return tf.constant(np.concatenate([images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]]))


def one_by_one(chain, images, labels, seed, segmentation):
    """The chain applied as before fusing: each step resamples the previous step's output."""
    for index, op in enumerate(chain):
        images, labels = op.apply(tf, images, labels, tf.random.experimental.stateless_fold_in(seed, index), segmentation)
    return images, labels


def test_fused_transforms_equal_the_steps_one_by_one_on_photos():
    """flip, rotate, translate, zoom and shear as one resample per image give today's
    sequential result within interpolation, where neither sampled outside the image (the
    centre); the product in the other order (a wrong composition) is far off."""
    from cnnbuild.augment import fused_runs
    chain = ops(FUSED_CHAIN, (64, 64, 3))
    assert [[op.kind for _, op in run] for run in fused_runs(chain)] == [["flip", "rotate", "translate", "zoom", "shear"]]
    images = photos()
    labels = tf.zeros([images.shape[0]], tf.int32)
    centre = (slice(None), slice(20, 44), slice(20, 44))
    for seed in ([3, 1], [3, 2], [8, 5]):
        seed = tf.constant(seed, tf.int64)
        fused, _ = make_augment(chain, (64, 64, 3), "classification")(images, labels, seed)
        steps, _ = one_by_one(chain, images, labels, seed, False)
        error = np.abs(fused.numpy() - steps.numpy())[centre]
        assert error.mean() < 0.02 and np.percentile(error, 99) < 0.12, (error.mean(), np.percentile(error, 99))
        reversed_chain, _ = one_by_one(chain[::-1], images, labels, seed, False)
        assert np.abs(fused.numpy() - reversed_chain.numpy())[centre].mean() > 3 * error.mean()


def test_fused_transforms_move_masks_with_the_same_matrix():
    """Masks go through the same composed matrix (nearest): they agree with the masks moved
    step by step, and with the image (shapes stay brighter than their background)."""
    images, _, masks = batch(n=16, size=32, channels=1)
    chain = ops(FUSED_CHAIN.replace("rotate: 20", "rotate: {degrees: 20, fill: reflect}"), (32, 32, 1))
    seed = tf.constant([4, 4], tf.int64)
    fused, fused_masks = make_augment(chain, (32, 32, 1), "segmentation", (32, 32))(images, tf.constant(masks, tf.int32), seed)
    _, step_masks = one_by_one(chain, images, tf.constant(masks, tf.int32), seed, True)
    centre = (slice(None), slice(8, 24), slice(8, 24))
    assert fused_masks.dtype == tf.int32 and set(np.unique(fused_masks)) <= {0, 1, 2, 3}
    assert (fused_masks.numpy()[centre] == step_masks.numpy()[centre]).mean() > 0.95
    for image, mask in zip(fused.numpy()[..., 0], fused_masks.numpy()):
        if mask.any() and (mask == 0).any():
            assert image[mask > 0].mean() > image[mask == 0].mean() + 0.15
