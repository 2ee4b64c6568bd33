"""`cnnbuild train LAPGAN_SPEC`: the seed's LAPGAN algorithm in the one training session.

Every step takes a minibatch of real images x (scaled to the coarsest generator's pixel
range) and builds its pyramid, I_0 = x, I_k = d(I_{k−1}); each level k < K is a conditional
GAN on the Laplacian residual h_k = I_k − u(I_{k+1}) given l_k = u(I_{k+1}) (and the class
when conditional), the coarsest an ordinary (c)GAN on I_K. The levels train side by side
and independently, as in Denton et al. (2015): one D update of every level per batch, a G
update of every level after every k-th (the GAN's k-step loop and losses, families/gan/
training.py). The noise is stateless, keyed by (train.seed, step, stream, level), so a run
resumed after a SIGKILL continues exactly. After every epoch: samples/epoch_NNN.png (the
whole sampler's fixed batch) and samples/levels_NNN.png (each level's image Ĩ_K … Ĩ_0 of
the batch's first column, enlarged to the full size; one column per class when conditional).

At the end generator.keras is the whole sampler (models.py) and gan.json describes it, so
`cnnbuild sample`, `export` and `evaluate --classifier` take a LAPGAN run as a GAN's.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ... import runfolder
from ..gan.sample import GENERATOR
from ..gan.training import (D_NOISE, Epochs, G_NOISE, GAN_JSON, PROBABILITY_EPSILON, SAMPLES, SampleGrid, discriminator_loss,
                            generator_loss, label_count, warnings)

LAPGAN_JSON = "lapgan.json"
LEVELS_PER_STREAM = 16     # noise seeds: (train.seed, (4·step + stream)·16 + level)


def train_lapgan(spec, report, out=None, stdout=None) -> dict:
    from ...train.session import train
    return train(Training(spec, report), out=out, stdout=stdout)


class Training(Epochs):
    """A LAPGAN's part of the training session (train/session.py states the contract)."""

    title = "LAPGAN"
    strategies = ("auto", "default")
    tf_options = {"remapping": False}     # as a GAN's (families/gan/training.py)

    def __init__(self, spec, report):
        self.lapgan, self.report, self.gan = spec, report, spec.gan
        self.spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, strategy="default"))
        data = spec.data
        if data.validation_split is None and data.validation is None:
            data = dataclasses.replace(data, validation_split=0.0)
        finest = spec.levels[0].discriminator
        self.data_spec = dataclasses.replace(finest, input=tuple(spec.image_shape), data=data, augment=spec.augment,
                                             train=spec.train)
        self.labels = (label_count(spec),)
        self.hint = "lower gan.generator_optimizer.learning_rate and gan.discriminator_optimizer's, or set their clipnorm"
        self.data_spread = 0.0

    def precision(self, plan):
        return "float32"

    def build(self, keras, tf, plan, loaded, steps_per_epoch, policy):
        from ...augment import make_augment
        from ...train.objective import make_optimizer
        from ...train.session import Parts
        from .models import build_bodies, build_sampler
        spec, gan, section = self.lapgan, self.gan, self.lapgan.train
        bodies = build_bodies(spec)
        low, high = self.report.pixel_range
        models, optimizers = [], []
        for generator, discriminator in bodies:
            models += [generator, discriminator]
            optimizers += [make_optimizer(keras, dataclasses.replace(section, optimizer=chosen), chosen.base_learning_rate)
                           for chosen in (gan.generator_optimizer, gan.discriminator_optimizer)]
        self.sampler, self.levels = build_sampler(spec, bodies), build_sampler(spec, bodies, every_level=True)
        grid_spec = dataclasses.replace(spec, gan=dataclasses.replace(gan, noise=spec.noise_length))
        self.grid = SampleGrid(tf, grid_spec, loaded.classes, low, high)
        loop = Loop(Steps(tf, keras, spec, bodies, optimizers, low, high,
                          [r.ends_in_probabilities for role, _, r in self.report.networks if role.endswith("discriminator")]),
                    self)
        augment = make_augment(spec.augment, spec.image_shape, "classification")
        return Parts(models, optimizers, loop, augment=augment, metrics={
            "family": "lapgan", "levels": [list(level.size) for level in spec.levels], "conditional": gan.conditional,
            "loss": gan.loss, "discriminator_steps": gan.discriminator_steps, "noise": spec.noise_length,
            "pixel_range": [low, high], "params": self.report.params})

    def folder_files(self, folder, loaded):
        gan, (low, high) = self.gan, self.report.pixel_range
        runfolder.write_json(folder / GAN_JSON, {
            "name": self.lapgan.name, "noise": self.lapgan.noise_length, "conditional": gan.conditional,
            "classes": list(loaded.classes) if gan.conditional else [], "image_shape": list(self.lapgan.image_shape),
            "pixel_range": [low, high], "loss": gan.loss})
        runfolder.write_json(folder / LAPGAN_JSON, {"levels": [list(level.size) for level in self.lapgan.levels],
                                                    "coarsest_noise": gan.noise})

    def header(self, loaded, plan, policy) -> str:
        sizes = " → ".join("×".join(map(str, level.size)) for level in reversed(self.lapgan.levels))
        return (f"LAPGAN, levels {sizes}, {self.report.params:,} parameters; "
                f"{'conditional, ' if self.gan.conditional else ''}{self.gan.loss} loss, k = "
                f"{self.gan.discriminator_steps}; one device ({plan.accelerator})")

    def finish(self, folder, history, say):
        from ...train.replicas import weights_digest
        from ...train.session import save_model
        save_model(self.sampler, folder / GENERATOR)
        rows = history.rows
        own = {"data_spread": round(self.data_spread, 4), "generator_sha256": weights_digest(self.sampler),
               "warnings": [w for i in range(1, len(rows) + 1) for w in warnings(rows[:i], self.data_spread, self.gan)]}
        return own, lambda metrics: (
            f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, D loss {rows[-1]['d_loss']:.4f}, "
            f"G loss {rows[-1]['g_loss']:.4f} (summed over the levels), {metrics['training_seconds']:.1f}s training → "
            f"{folder / GENERATOR} (the whole sampler), samples in {folder / SAMPLES}")

    def curves(self, rows):
        return (("loss, summed over the levels", (("d_loss", "D loss"), ("g_loss", "G loss"))),
                ("discriminators' mean output", (("d_real", "D(x)"), ("d_fake", "D(G(z))"))),
                ("sample spread / data's", (("sample_spread", "spread"),)))

    def write_levels(self, path):
        """Each level's image of the grid's first column (one per class when conditional),
        coarsest at the top, enlarged to the full size by repetition (as u enlarges)."""
        from ...views.grid import write_grid
        rows, columns = self.grid.rows, self.grid.columns
        chosen = np.arange(rows) * columns if self.grid.conditional else np.arange(min(rows * columns, 8))
        inputs = ({key: value[chosen] for key, value in self.grid.inputs.items()} if self.grid.conditional
                  else self.grid.inputs[chosen])
        height = self.lapgan.image_shape[0]
        pictures = []
        for image in self.levels(inputs, training=False):
            image = np.asarray(image)
            factor = height // image.shape[1]
            pictures.append(image.repeat(factor, axis=1).repeat(factor, axis=2))
        pixels = np.clip((np.concatenate(pictures) - self.grid.low) / (self.grid.high - self.grid.low), 0, 1)
        write_grid(np.round(pixels * 255).astype(np.uint8), len(chosen), path)


class Loop:
    """Epochs of the levels' D and G updates, the two grids, then the session's commit."""

    def __init__(self, steps, training):
        self.steps, self.training = steps, training

    def run(self, pipeline, start, epochs, steps_per_epoch, commit, tty, out):
        training = self.training
        commit.begin()
        for epoch in range(start, epochs):
            began = time.perf_counter()
            d_loss, g_loss, d_real, d_fake = self.steps.epoch(pipeline.train_epoch(epoch), epoch * steps_per_epoch,
                                                              steps_per_epoch)
            trained = time.perf_counter() - began
            logs = {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
            if all(math.isfinite(v) for v in (d_loss, g_loss)):
                samples = training.grid.write(training.sampler, commit.folder / SAMPLES / f"epoch_{epoch + 1:03d}.png")
                training.write_levels(commit.folder / SAMPLES / f"levels_{epoch + 1:03d}.png")
                logs["sample_spread"] = round(training.grid.spread(samples) / max(training.data_spread, 1e-9), 4)
            commit(epoch + 1, logs, trained)


class Steps:
    """Every level's D step and G step as two tf.functions over the batch's pyramid."""

    def __init__(self, tf, keras, spec, bodies, optimizers, low, high, probabilities):
        gan, count = spec.gan, len(spec.levels)
        seed, classes, conditional, loss = spec.train.seed, spec.classes, gan.conditional, gan.loss
        down, up = keras.layers.AveragePooling2D(2), keras.layers.UpSampling2D(2)   # d and u (models.py)

        def logit(output, probability):
            if not probability:
                return output
            p = tf.clip_by_value(output, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
            return tf.math.log(p) - tf.math.log1p(-p)

        def normal(shape, step, stream, level):
            key = (step * 4 + stream) * LEVELS_PER_STREAM + level
            return tf.random.stateless_normal(shape, seed=tf.stack([tf.constant(seed, tf.int64), key]))

        def planes(labels, size):
            one_hot = tf.one_hot(labels, classes)[:, None, None, :]
            return [tf.tile(one_hot, [1, size[0], size[1], 1])] if conditional else []

        def pyramid(images):
            levels = [images * (high - low) + low]
            for _ in range(count - 1):
                levels.append(down(levels[-1]))
            return levels

        def fakes(levels, labels, step, stream):
            """Per level: (D's input for the real pair, the generated pair's)."""
            pairs = []
            n = tf.shape(labels)[0]
            for k, (generator, _) in enumerate(bodies):
                size = spec.levels[k].size
                if k == count - 1:
                    z = normal([n, gan.noise], step, stream, k)
                    made = generator(tf.concat([z] + ([tf.one_hot(labels, classes)] if conditional else []), -1),
                                     training=True)
                    pairs.append((tf.concat([levels[k]] + planes(labels, size), -1),
                                  tf.concat([made] + planes(labels, size), -1)))
                else:
                    lowpass = up(levels[k + 1])
                    residual = levels[k] - lowpass                         # h_k = I_k − u(I_{k+1})
                    plane = normal([n, size[0], size[1], 1], step, stream, k)
                    made = generator(tf.concat([lowpass, plane] + planes(labels, size), -1), training=True)
                    pairs.append((tf.concat([residual, lowpass] + planes(labels, size), -1),
                                  tf.concat([made, lowpass] + planes(labels, size), -1)))
            return pairs

        def d_objective(real, fake):
            return discriminator_loss(tf, loss, real, fake)

        def g_objective(fake):
            return generator_loss(tf, loss, fake)

        images_spec = tf.TensorSpec([None, *spec.image_shape], tf.float32)
        labels_spec, step_spec = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)

        @tf.function(input_signature=[images_spec, labels_spec, step_spec])
        def discriminator_step(images, labels, step):
            pairs = [(real, tf.stop_gradient(fake)) for real, fake in fakes(pyramid(images), labels, step, D_NOISE)]
            total, reals, fakes_seen = 0.0, [], []
            for k, ((_, discriminator), (real_in, fake_in)) in enumerate(zip(bodies, pairs)):
                with tf.GradientTape() as tape:
                    real = logit(discriminator(real_in, training=True), probabilities[k])
                    fake = logit(discriminator(fake_in, training=True), probabilities[k])
                    d_loss = d_objective(real, fake)
                variables = discriminator.trainable_variables
                optimizers[2 * k + 1].apply_gradients(zip(tape.gradient(d_loss, variables), variables))
                total += d_loss
                reals.append(tf.reduce_mean(tf.sigmoid(real)))
                fakes_seen.append(tf.reduce_mean(tf.sigmoid(fake)))
            return total, tf.add_n(reals) / count, tf.add_n(fakes_seen) / count

        @tf.function(input_signature=[images_spec, labels_spec, step_spec])
        def generator_step(images, labels, step):
            levels = pyramid(images)
            with tf.GradientTape(persistent=True) as tape:
                pairs = fakes(levels, labels, step, G_NOISE)
                losses = [g_objective(logit(discriminator(fake_in, training=True), probabilities[k]))
                          for k, ((_, discriminator), (_, fake_in)) in enumerate(zip(bodies, pairs))]
            for k, (generator, _) in enumerate(bodies):
                variables = generator.trainable_variables
                optimizers[2 * k].apply_gradients(zip(tape.gradient(losses[k], variables), variables))
            del tape
            return tf.add_n(losses)

        self.tf, self.k = tf, gan.discriminator_steps
        self.discriminator, self.generator = discriminator_step, generator_step

    def epoch(self, batches, first_step, steps_per_epoch) -> tuple:
        """As the GAN's: a D update of every level per batch, a G update of every level after
        every k-th and after the last; (D loss, G loss summed over levels, mean D(x), mean D(G(z)))."""
        d_values, g_values = [], []
        for i, (images, labels) in enumerate(batches):
            step = self.tf.constant(first_step + i, self.tf.int64)
            d_values.append(self.discriminator(images, labels, step))
            if (i + 1) % self.k == 0 or i + 1 == steps_per_epoch:
                g_values.append(self.generator(images, labels, step))
        d_loss, d_real, d_fake = np.mean(np.array(d_values, np.float64), axis=0).tolist()
        return d_loss, float(np.mean(np.array(g_values, np.float64))), d_real, d_fake
