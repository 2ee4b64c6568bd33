"""GanSpec → (generator, discriminator): two Keras models around the two spec bodies.

Each body is `build_model` of its Spec, used whole as a nested model, so its parameters are
exactly what `check.infer` reports for that Spec. Around it only weightless layers:

    generator      noise (N, z) [+ label (N,) int32 → one-hot (N, K)] → concat → G body → (N, H, W, C)
    discriminator  image (N, H, W, C) [+ label → one-hot, tiled to (N, H, W, K)] → concat → D body → (N, 1)

The conditioning follows Keras's conditional-GAN example (the label joined to G's noise and,
as K constant channels, to D's image), the seeds' G(z|y) and D(x|y). Keras is imported
inside the functions, so importing this module is free.
"""
from __future__ import annotations


def build_gan(gan_spec):
    """(generator, discriminator), uncompiled Keras models (see the module's docstring)."""
    import keras

    from ...assemble.model import build_model
    generator_body = build_model(gan_spec.generator)
    discriminator_body = build_model(gan_spec.discriminator)
    conditional, classes = gan_spec.gan.conditional, gan_spec.classes
    height, width, _ = gan_spec.image_shape

    noise = keras.Input(shape=(gan_spec.gan.noise,), name="noise")
    image = keras.Input(shape=tuple(gan_spec.image_shape), name="image")
    if not conditional:
        generator = keras.Model(noise, generator_body(noise), name="generator")
        discriminator = keras.Model(image, discriminator_body(image), name="discriminator")
        return generator, discriminator

    def one_hot(label, name):
        return keras.layers.CategoryEncoding(num_tokens=classes, output_mode="one_hot", name=name)(label)

    label = keras.Input(shape=(), dtype="int32", name="label")
    joined = keras.layers.Concatenate(name="noise_and_label")([noise, one_hot(label, "label_one_hot")])
    generator = keras.Model({"noise": noise, "label": label}, generator_body(joined), name="generator")

    label = keras.Input(shape=(), dtype="int32", name="label")
    planes = keras.layers.Reshape((1, 1, classes), name="label_planes")(one_hot(label, "label_one_hot"))
    planes = keras.layers.UpSampling2D(size=(height, width), name="label_tiled")(planes)   # K constant H×W maps
    joined = keras.layers.Concatenate(name="image_and_label")([image, planes])
    discriminator = keras.Model({"image": image, "label": label}, discriminator_body(joined), name="discriminator")
    return generator, discriminator

