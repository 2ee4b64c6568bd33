"""`cnnbuild train GAN_SPEC`: a generator and a discriminator trained as a pair (seed 004).

The seeds' algorithm (Goodfellow et al. 2014, Algorithm 1), step by step: each step takes a
minibatch of data and one of noise and updates D; after every k = gan.discriminator_steps
D updates, one G update on a fresh minibatch of noise. An epoch is one pass over the data
(⌈images / batch⌉ D updates; a G update after every k-th and after the last). Losses, on D's logit
l (when D ends in a sigmoid, l = log p − log(1 − p) of its clipped probability p):

    D, non_saturating and minimax   softplus(−l(x)) + softplus(l(G(z)))   = −log D(x) − log(1 − D(G(z)))
    G, non_saturating (default)     softplus(−l(G(z)))                     = −log D(G(z))
    G, minimax (the seeds' as written)  −softplus(l(G(z)))                 = log(1 − D(G(z)))
    hinge (Miyato et al. 2018)      D: relu(1 − l(x)) + relu(1 + l(G(z)));  G: −l(G(z))

The run folder is a classifier run's (runfolder.py, checkpoints.py): the lock, spec.yaml,
one checksummed checkpoint per epoch holding both networks, both optimizers and the
history, history.csv, metrics.json and training_curves.png; and for a GAN gan.json,
samples/epoch_NNN.png (a fixed noise batch, one row per class when conditional),
generator.keras and discriminator.keras (assemble/gan.py's models). Noise is drawn statelessly
from (train.seed, step), and the data's order from (train.seed, epoch), so a run resumed
after a SIGKILL ends with the same weights as one that was never stopped.

Runs on one device (the default strategy: the CPU, or the one GPU TensorFlow sees first), in float32.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ... import runfolder
from ...errors import UsageError

GAN_JSON = "gan.json"
SAMPLES = "samples"
GENERATOR, DISCRIMINATOR = "generator.keras", "discriminator.keras"
UNCONDITIONAL_ROWS = 8       # the sample grid's rows without classes (gan.samples_per_class columns)
# the noise streams, stateless: step s of the run draws D's noise with the seed (train.seed, 4·s + D_NOISE),
# G's with (train.seed, 4·s + G_NOISE); the sample grid's fixed noise is (train.seed, FIXED_NOISE)
D_NOISE, G_NOISE, FIXED_NOISE = 1, 2, 3
PROBABILITY_EPSILON = 1e-7   # D's sigmoid output is clipped to [ε, 1 − ε] before its logit is taken (Keras's epsilon)
# "the discriminator has won": mean D(x) above WON_REAL and mean D(G(z)) below WON_FAKE for WON_EPOCHS epochs
WON_REAL, WON_FAKE, WON_EPOCHS = 0.95, 0.05, 3
COLLAPSE_RATIO = 0.25        # mode collapse: the fixed batch's spread below this fraction of the data's
SPREAD_EPOCHS = 5            # … after having been twice as high, or through all of the first 5 epochs
SPREAD_SAMPLE = 512          # real images read to measure the data's spread


def train_gan(gan_spec, report, out=None, stdout=None) -> dict:
    """Train a checked GanSpec's generator and discriminator (`report`: its valid GanReport)
    in the one training session (train/session.py); returns the final metrics."""
    from ...train.session import train
    return train(Training(gan_spec, report), out=out, stdout=stdout)


class Epochs:
    """What every adversarial family says around its epochs (its Training has `spec`, `gan`,
    `grid` and `data_spread`): the unused settings and the data's spread before the first, the
    epoch line, the seeds' failure warnings after each."""

    def started(self, pipeline, say):
        for note in unused_settings(self.spec.train):
            say(f"note: {note}")
        self.data_spread = spread_of_data(pipeline, self.grid)

    def line(self, row, corrupt=None) -> str:
        return epoch_line(row, self.spec.train.epochs)

    def after(self, rows) -> list:
        return [f"warning: {warning}" for warning in warnings(rows, self.data_spread, self.gan)]


class Training(Epochs):
    """A GAN's part of the training session (train/session.py states the contract): two
    networks and two optimizers, the seeds' k-step loop (Steps), a sample grid and the
    failure warnings after every epoch, generator.keras and discriminator.keras at the end."""

    title = "GAN"
    strategies = ("auto", "default")        # one device for now
    tf_options = {"remapping": False}       # Grappler's remapper fails (and logs an error) fusing a nested
    # model's conv + leaky_relu under a GradientTape (TF 2.21); the steps are the same without the fusion

    def __init__(self, gan_spec, report):
        self.gan_spec, self.report, self.gan = gan_spec, report, gan_spec.gan
        # the plan's strategy: the default (the one device TensorFlow sees first)
        self.spec = dataclasses.replace(gan_spec, train=dataclasses.replace(gan_spec.train, strategy="default"))
        self.data_spec = data_spec_of(gan_spec)
        self.labels = (label_count(gan_spec),)
        rates = (self.gan.generator_optimizer.base_learning_rate, self.gan.discriminator_optimizer.base_learning_rate)
        self.hint = (f"lower gan.generator_optimizer.learning_rate (now {rates[0]:g}) and "
                     f"gan.discriminator_optimizer's (now {rates[1]:g}), or set their clipnorm")
        self.data_spread = 0.0

    def precision(self, plan):
        return "float32"

    def build(self, keras, tf, plan, loaded, steps_per_epoch, policy):
        from ...augment import make_augment
        from ...train.objective import make_optimizer
        from ...train.session import Parts
        from .models import build_gan
        gan_spec, gan, section = self.gan_spec, self.gan, self.gan_spec.train
        generator, discriminator = build_gan(gan_spec)
        low, high = self.report.pixel_range         # the check refuses a generator without one
        self.probability = self.report.discriminator.ends_in_probabilities
        optimizers = [make_optimizer(keras, dataclasses.replace(section, optimizer=chosen), chosen.base_learning_rate)
                      for chosen in (gan.generator_optimizer, gan.discriminator_optimizer)]
        self.grid = SampleGrid(tf, gan_spec, loaded.classes, low, high)
        self.generator, self.discriminator, self.loaded = generator, discriminator, loaded
        loop = Loop(Steps(tf, gan_spec, generator, discriminator, *optimizers, low, high, self.probability), self)
        # images in 0…1, augmented when the spec says so
        augment = make_augment(gan_spec.augment, gan_spec.image_shape, "classification")
        return Parts([generator, discriminator], optimizers, loop, augment=augment, metrics={
            "conditional": gan.conditional, "loss": gan.loss, "discriminator_steps": gan.discriminator_steps,
            "noise": gan.noise, "pixel_range": [low, high],
            "discriminator_output": "probability" if self.probability else "logit",
            "generator_params": self.report.generator.params, "discriminator_params": self.report.discriminator.params})

    def folder_files(self, folder, loaded):
        gan, (low, high) = self.gan, self.report.pixel_range
        runfolder.write_json(folder / GAN_JSON, {
            "name": self.gan_spec.name, "noise": gan.noise, "conditional": gan.conditional,
            "classes": list(loaded.classes) if gan.conditional else [], "image_shape": list(self.gan_spec.image_shape),
            "pixel_range": [low, high], "loss": gan.loss})

    def header(self, loaded, plan, policy) -> str:
        gan, (low, high) = self.gan, self.report.pixel_range
        return (f"generator {self.report.generator.params:,} parameters, discriminator "
                f"{self.report.discriminator.params:,}; {'conditional, ' if gan.conditional else ''}{gan.loss} loss, "
                f"k = {gan.discriminator_steps}, pixels {low:g}…{high:g}, "
                f"{'probability' if self.probability else 'logit'} D; one device ({plan.accelerator})")

    def finish(self, folder, history, say):
        from ...train.replicas import weights_digest
        from ...train.session import save_model
        for network, name in ((self.generator, GENERATOR), (self.discriminator, DISCRIMINATOR)):
            save_model(network, folder / name)
        rows = history.rows
        own = {"data_spread": round(self.data_spread, 4), "generator_sha256": weights_digest(self.generator),
               "discriminator_sha256": weights_digest(self.discriminator),
               "warnings": [w for i in range(1, len(rows) + 1) for w in warnings(rows[:i], self.data_spread, self.gan)]}
        return own, lambda metrics: (
            f"done: {metrics['epochs']} epoch{'s' if metrics['epochs'] != 1 else ''}, D loss {rows[-1]['d_loss']:.4f}, "
            f"G loss {rows[-1]['g_loss']:.4f}, {metrics['training_seconds']:.1f}s training, "
            f"{metrics['images_per_second']:,.0f} img/s → {folder / GENERATOR}, samples in {folder / SAMPLES}")

    def curves(self, rows):
        """D and G loss together, mean D(x) and D(G(z)) together, and the samples' spread relative to the data's."""
        return (("loss", (("d_loss", "D loss"), ("g_loss", "G loss"))),
                ("discriminator's mean output", (("d_real", "D(x)"), ("d_fake", "D(G(z))"))),
                ("sample spread / data's", (("sample_spread", "spread"),)))


class Loop:
    """The seeds' loop over epochs: each epoch's D and G updates (Steps), then the sample
    grid, then the session's commit (checkpoint, history, the epoch's line and warnings)."""

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
                samples = training.grid.write(training.generator, commit.folder / SAMPLES / f"epoch_{epoch + 1:03d}.png")
                logs["sample_spread"] = round(training.grid.spread(samples) / max(training.data_spread, 1e-9), 4)
            commit(epoch + 1, logs, trained)


def data_spec_of(gan_spec):
    """The Spec the data stage reads (load_data, Pipeline): the discriminator's, with the
    image shape as its input and the GAN's data, augment and train sections. A GAN validates
    nothing, so all the data trains unless a split is asked for."""
    data = gan_spec.data
    if data.validation_split is None and data.validation is None:
        data = dataclasses.replace(data, validation_split=0.0)
    return dataclasses.replace(gan_spec.discriminator, input=tuple(gan_spec.image_shape), data=data,
                               augment=gan_spec.augment, train=gan_spec.train)


def label_count(gan_spec) -> int:
    """The class count the data is read against: K when conditional; else the data's own (the
    labels are not used), known for the built-in sources, data.classes and class folders."""
    if gan_spec.gan.conditional:
        return gan_spec.classes
    from ...sources import labels_from_folders, static_classes
    data = gan_spec.data
    names = static_classes(data)
    if names is not None and len(names) == 1 and data.classes is None and labels_from_folders(data):
        # the directory reader knows classes, and one class is no classification
        raise UsageError(f"{data.location}: an unconditional GAN reads a directory of class folders, and this "
                         "one has a single folder\n  hint: split its images over two or more folders (any "
                         "names: the labels are read but not used)")
    if names is not None:
        return len(names)
    raise UsageError(f"an unconditional GAN on a {data.kind} source needs its class names to read it\n"
                     "  hint: give data.classes: [names] (the labels are read but not used)")


def unused_settings(section) -> list:
    """The train: settings a classifier run reads and GAN training does not (yet), in words."""
    unused = [("tensorboard", section.tensorboard, "no TensorBoard events are written; history.csv and "
               "training_curves.png hold the curves"),
              ("mixed_precision", section.mixed_precision not in ("auto", "float32"), "a GAN trains in float32"),
              ("jit_compile", section.jit_compile is True, "the steps are tf.functions without XLA"),
              ("steps_per_execution", section.steps_per_execution != 1, "each step is one call"),
              ("augment_on", section.augment_on == "device", "augmentation runs in the data pipeline")]
    return [f"train.{key} is not used by GAN training: {what}" for key, used, what in unused if used]


class Steps:
    """The two training steps as tf.functions: `discriminator(images 0…1, labels, step)` →
    (D loss, mean D(x), mean D(G(z))) and `generator(labels, step)` → G loss, `step` keying
    the stateless noise; and `epoch`, the seeds' loop over one epoch's batches."""

    def __init__(self, tf, gan_spec, generator, discriminator, g_optimizer, d_optimizer, low, high, probability):
        gan = gan_spec.gan
        seed, noise_size, conditional, loss = gan_spec.train.seed, gan.noise, gan.conditional, gan.loss

        def logit(output):
            if not probability:
                return output
            p = tf.clip_by_value(output, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
            return tf.math.log(p) - tf.math.log1p(-p)

        def noise(count, step, stream):
            return tf.random.stateless_normal([count, noise_size], seed=tf.stack(
                [tf.constant(seed, tf.int64), step * 4 + stream]))

        def generate(z, labels):
            return generator({"noise": z, "label": labels} if conditional else z, training=True)

        def judge(images, labels):
            return logit(discriminator({"image": images, "label": labels} if conditional else images, training=True))

        def d_objective(real, fake):
            return discriminator_loss(tf, loss, real, fake)

        def g_objective(fake):
            return generator_loss(tf, loss, fake)

        # one trace each: the batch axis is left open (an epoch's last batch is short)
        images_spec = tf.TensorSpec([None, *gan_spec.image_shape], tf.float32)
        labels_spec, step_spec = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)

        @tf.function(input_signature=[images_spec, labels_spec, step_spec])
        def discriminator_step(images, labels, step):
            real_images = images * (high - low) + low
            fake_images = generate(noise(tf.shape(images)[0], step, D_NOISE), labels)
            with tf.GradientTape() as tape:
                real, fake = judge(real_images, labels), judge(fake_images, labels)
                d_loss = d_objective(real, fake) + _extra(tf, discriminator)
            gradients = tape.gradient(d_loss, discriminator.trainable_variables)
            d_optimizer.apply_gradients(zip(gradients, discriminator.trainable_variables))
            return d_loss, tf.reduce_mean(tf.sigmoid(real)), tf.reduce_mean(tf.sigmoid(fake))

        @tf.function(input_signature=[labels_spec, step_spec])
        def generator_step(labels, step):
            with tf.GradientTape() as tape:
                fake = judge(generate(noise(tf.shape(labels)[0], step, G_NOISE), labels), labels)
                g_loss = g_objective(fake) + _extra(tf, generator)
            gradients = tape.gradient(g_loss, generator.trainable_variables)
            g_optimizer.apply_gradients(zip(gradients, generator.trainable_variables))
            return g_loss

        self.tf, self.k = tf, gan.discriminator_steps
        self.discriminator, self.generator = discriminator_step, generator_step

    def epoch(self, batches, first_step, steps_per_epoch) -> tuple:
        """One pass over the data: a D update per batch, a G update after every k-th and after
        the last; (mean D loss, mean G loss, mean D(x), mean D(G(z)))."""
        d_values, g_values = [], []
        for i, (images, labels) in enumerate(batches):
            step = self.tf.constant(first_step + i, self.tf.int64)
            d_values.append(self.discriminator(images, labels, step))
            if (i + 1) % self.k == 0 or i + 1 == steps_per_epoch:
                g_values.append(self.generator(labels, step))
        d_loss, d_real, d_fake = np.mean(np.array(d_values, np.float64), axis=0).tolist()
        return d_loss, float(np.mean(np.array(g_values, np.float64))), d_real, d_fake


def discriminator_loss(tf, loss: str, real, fake):
    """D's loss on its logits for data (`real`) and samples (`fake`): the seeds' (and
    non-saturating's) −log D(x) − log(1 − D(G(z))), or hinge's."""
    if loss == "hinge":
        return tf.reduce_mean(tf.nn.relu(1 - real)) + tf.reduce_mean(tf.nn.relu(1 + fake))
    return tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))


def generator_loss(tf, loss: str, fake):
    """G's loss on D's logits for its samples: −log D(G(z)) (non_saturating), log(1 − D(G(z)))
    (minimax, the seeds' as written), or hinge's −D(G(z))."""
    if loss == "hinge":
        return -tf.reduce_mean(fake)
    if loss == "minimax":
        return -tf.reduce_mean(tf.nn.softplus(fake))
    return tf.reduce_mean(tf.nn.softplus(-fake))


def _extra(tf, model):
    """The model's own losses (weight regularisers), 0 when it has none."""
    return tf.add_n(model.losses) if model.losses else 0.0


class SampleGrid:
    """The fixed noise batch drawn after every epoch: one row per class when conditional
    (column j of every row shares noise j, so a column shows one style in every class),
    else UNCONDITIONAL_ROWS rows; gan.samples_per_class columns."""

    def __init__(self, tf, gan_spec, classes, low, high):
        gan = gan_spec.gan
        self.columns = gan.samples_per_class
        self.rows = len(classes) if gan.conditional else UNCONDITIONAL_ROWS
        self.conditional, self.low, self.high = gan.conditional, low, high
        z = tf.random.stateless_normal([self.rows * self.columns if not gan.conditional else self.columns, gan.noise],
                                       seed=[gan_spec.train.seed, FIXED_NOISE]).numpy()
        if gan.conditional:
            self.inputs = {"noise": np.tile(z, (self.rows, 1)),
                           "label": np.repeat(np.arange(self.rows, dtype=np.int32), self.columns)}
        else:
            self.inputs = z

    def images(self, generator) -> np.ndarray:
        """The samples, float 0…1, (rows·columns, H, W, C), row by row."""
        pixels = np.asarray(generator(self.inputs, training=False))
        return np.clip((pixels - self.low) / (self.high - self.low), 0.0, 1.0)

    def write(self, generator, path) -> np.ndarray:
        """Write the grid PNG (contract: uint8 = round((x − lo) / (hi − lo) · 255)); returns the samples 0…1."""
        from ...views.grid import write_grid
        samples = self.images(generator)
        write_grid(np.round(samples * 255).astype(np.uint8), self.columns, path)
        return samples

    def groups(self, images, labels=None):
        """The images split as the spread compares them: by class when conditional, else one group."""
        if not self.conditional:
            return [images]
        if labels is None:
            labels = np.repeat(np.arange(self.rows), self.columns)
        return [images[labels == k] for k in range(self.rows) if np.sum(labels == k) > 1]

    def spread(self, images, labels=None) -> float:
        """A batch's spread: the mean over pixels of the standard deviation across images,
        averaged over the groups (classes when conditional). Samples collapsing to one mode
        have a spread near 0; the data's is the yardstick."""
        groups = self.groups(images, labels)
        return float(np.mean([np.std(group, axis=0, ddof=1).mean() for group in groups])) if groups else 0.0


def spread_of_data(pipeline, grid) -> float:
    """The spread of up to SPREAD_SAMPLE training images (epoch 0's first batches), measured
    as SampleGrid.spread measures the samples."""
    images, labels = [], []
    for batch_images, batch_labels in pipeline.train_epoch(0):
        images.append(np.asarray(batch_images))
        labels.append(np.asarray(batch_labels))
        if sum(len(x) for x in images) >= SPREAD_SAMPLE:
            break
    return grid.spread(np.concatenate(images), np.concatenate(labels).astype(int))


def epoch_line(row, epochs) -> str:
    return (f"epoch {row['epoch']}/{epochs}  D loss {row['d_loss']:.4f}  G loss {row['g_loss']:.4f}  "
            f"D(x) {row['d_real']:.3f}  D(G(z)) {row['d_fake']:.3f}  spread {row['sample_spread']:.2f}  "
            f"{row['seconds']:.1f}s  {row['images_per_second']:,.0f} img/s")


def warnings(rows, data_spread, gan) -> list:
    """The seeds' failure modes, seen in the history up to its last row (each said once, on
    the epoch it begins): the discriminator has won; the samples collapse to one mode."""
    said = []
    epoch = rows[-1]["epoch"]
    won = [r["d_real"] > WON_REAL and r["d_fake"] < WON_FAKE for r in rows[-WON_EPOCHS - 1:]]
    if len(won) >= WON_EPOCHS and all(won[-WON_EPOCHS:]) and not (len(won) > WON_EPOCHS and won[0]):
        rate = gan.discriminator_optimizer.base_learning_rate
        why = ("log(1 − D(G(z))) saturates and the generator's gradient vanishes" if gan.loss == "minimax"
               else "the generator learns little from it")
        said.append(f"epoch {epoch}: the discriminator has won: mean D(x) > {WON_REAL} and mean D(G(z)) < {WON_FAKE} "
                    f"for {WON_EPOCHS} epochs: {why}\n  hint: lower "
                    f"gan.discriminator_optimizer.learning_rate (now {rate:g})"
                    + (f" or gan.discriminator_steps (now {gan.discriminator_steps})" if gan.discriminator_steps > 1
                       else "") + ", or make the discriminator smaller (or add dropout)"
                    + ("; with loss minimax, loss: non_saturating keeps the gradient" if gan.loss == "minimax" else ""))
    spreads = [r["sample_spread"] for r in rows]
    # a fall: below the ratio now, not the epoch before, after having been well above it; or never spread out
    fell = spreads[-1] < COLLAPSE_RATIO and len(spreads) > 1 and spreads[-2] >= COLLAPSE_RATIO \
        and max(spreads[:-1]) >= 2 * COLLAPSE_RATIO
    stuck = len(spreads) == SPREAD_EPOCHS and max(spreads) < COLLAPSE_RATIO
    if fell or stuck:
        said.append(f"epoch {epoch}: the samples may {'be collapsing' if fell else 'have collapsed'} to one mode: "
                    f"the fixed batch's spread (mean per-pixel standard deviation"
                    f"{' within each class' if gan.conditional else ''}) is {spreads[-1]:.2f}× the data's "
                    f"({data_spread:.3f}){' after ' + format(max(spreads[:-1]), '.2f') + '×' if fell else ''}"
                    f"\n  hint: look at the samples; lower gan.generator_optimizer.learning_rate (now "
                    f"{gan.generator_optimizer.base_learning_rate:g}), or make the noise longer (gan.noise)")
    return said
