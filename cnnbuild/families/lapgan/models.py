"""LapganSpec → each level's two networks and the whole sampler, as Keras models.

The bodies are `build_model` of each level's Spec (their parameters are what the check
reports); the joins (noise, label planes, the low-pass image) are made around them in the
training step (training.py) and in the sampler, with the same Keras layers:

    d  = AveragePooling2D(2)          I_k = d(I_{k−1})
    u  = UpSampling2D(2) (nearest)    h_k = I_k − u(I_{k+1})

The sampler is one model with the GAN generator's inputs — {"noise": (N, L), "label": (N,)}
or the noise alone — so `cnnbuild sample`, `export` and `evaluate --classifier` read it as a
GAN's generator.keras: L = gan.noise + Σ_{k<K} H_k·W_k, the coarsest level's z first, then
level K−1's noise plane, … level 0's last.
"""
from __future__ import annotations


def build_bodies(spec) -> list:
    """[(generator, discriminator)] per level, finest first: the spec bodies as Keras models."""
    from ...assemble.model import build_model
    return [(build_model(level.generator), build_model(level.discriminator)) for level in spec.levels]


def label_planes(keras, label, classes, size, name):
    """The one-hot label as K constant H×W maps (the GAN discriminator's conditioning)."""
    one_hot = keras.layers.CategoryEncoding(num_tokens=classes, output_mode="one_hot", name=f"{name}_one_hot")(label)
    planes = keras.layers.Reshape((1, 1, classes), name=f"{name}_planes")(one_hot)
    return keras.layers.UpSampling2D(size=size, name=f"{name}_tiled")(planes)


def build_sampler(spec, bodies, every_level: bool = False):
    """The whole sampler: noise (and label) → Ĩ_0; with `every_level`, [Ĩ_K, …, Ĩ_0] for the
    per-epoch grid. Shares the bodies' weights."""
    import keras

    from ...layers.keras_layers import Slice
    conditional, classes = spec.gan.conditional, spec.classes
    noise = keras.Input(shape=(spec.noise_length,), name="noise")
    label = keras.Input(shape=(), dtype="int32", name="label") if conditional else None
    count = len(spec.levels)
    coarsest_generator = bodies[-1][0]
    z = Slice(0, spec.gan.noise, name="noise_coarsest")(noise)
    if conditional:
        one_hot = keras.layers.CategoryEncoding(num_tokens=classes, output_mode="one_hot", name="label_one_hot")(label)
        z = keras.layers.Concatenate(name="noise_and_label")([z, one_hot])
    image = coarsest_generator(z)
    made = [image]
    start = spec.gan.noise
    for k in range(count - 2, -1, -1):
        h, w = spec.levels[k].size
        low = keras.layers.UpSampling2D(2, name=f"u_{k}")(image)
        plane = keras.layers.Reshape((h, w, 1), name=f"noise_plane_{k}")(Slice(start, start + h * w, name=f"noise_{k}")(noise))
        start += h * w
        parts = [low, plane] + ([label_planes(keras, label, classes, (h, w), f"label_{k}")] if conditional else [])
        residual = bodies[k][0](keras.layers.Concatenate(name=f"level_{k}_input")(parts))
        image = keras.layers.Add(name=f"image_{k}")([low, residual])
        made.append(image)
    inputs = {"noise": noise, "label": label} if conditional else noise
    return keras.Model(inputs, made if every_level else image, name="lapgan_sampler" if not every_level else "levels")
