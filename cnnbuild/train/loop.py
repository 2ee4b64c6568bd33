"""The training loops. Both take the same pieces and call the same per-epoch `commit`
(checkpoints.Commit), which makes the epoch durable and says whether to stop:

  KerasFit         Keras's fit(): the default, mirrored and TPU strategies;
  StrategyRunLoop  a custom loop with strategy.run over per-worker shards, for multi_worker
                   (Keras 3.15's fit() crashes under MultiWorkerMirroredStrategy with two
                   workers).

`strategy.Plan.loop` names the one a run uses. The optimizer is the loop's: fit's compile
wraps it for float16 loss scaling itself, the custom loop does it here.
"""
from __future__ import annotations

import time

import numpy as np

from .replicas import broadcast_from_chief


class KerasFit:
    """Keras's fit() over the pipeline's epochs, the commit as a callback."""

    def __init__(self, keras, tf, plan, model, optimizer, objective, section, device_augment, policy):
        trained = model
        if device_augment is not None:
            trained = augmenting_model(keras, tf, model, device_augment, section.seed)
        trained.compile(optimizer=optimizer, loss=objective.loss, metrics=objective.metrics,
                        jit_compile=section.jit_compile, steps_per_execution=section.steps_per_execution)
        self.keras, self.trained = keras, trained
        self.optimizer = trained.optimizer

    def run(self, pipeline, start, epochs, steps_per_epoch, commit, tty, out):
        class CommitEachEpoch(self.keras.callbacks.Callback):
            """After each epoch: the commit (sync replicas, check for NaN, checkpoint, history,
            early stop), told how long the training part of the epoch took."""

            def on_epoch_begin(self, epoch, logs=None):
                self.began = time.perf_counter()
                self.trained = None

            def on_test_begin(self, logs=None):
                if self.trained is None:    # validation starts: the training part of the epoch is over
                    self.trained = time.perf_counter() - self.began

            def on_epoch_end(self, epoch, logs=None):
                trained = self.trained if self.trained is not None else time.perf_counter() - self.began
                if commit(epoch + 1, dict(logs or {}), trained):
                    self.model.stop_training = True

        dataset = pipeline.train_epochs(start, epochs)
        commit.begin()
        self.trained.fit(dataset, epochs=epochs, initial_epoch=start, steps_per_epoch=steps_per_epoch,
                         validation_data=pipeline.validation(), callbacks=[CommitEachEpoch()], shuffle=False,
                         verbose=1 if tty else 0)


class StrategyRunLoop:
    """strategy.run over per-worker shards: each replica's gradient of its part of the global
    batch, all-reduced by the optimizer; the chief decides when to stop, for every worker."""

    def __init__(self, keras, tf, plan, model, optimizer, objective, section, device_augment, policy):
        if policy == "mixed_float16":       # fit's compile would do this; here scale_loss needs it
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.keras, self.tf, self.plan, self.model, self.optimizer = keras, tf, plan, model, optimizer
        self.objective, self.section, self.augment = objective, section, device_augment

    def run(self, pipeline, start, epochs, steps_per_epoch, commit, tty, out):
        tf, keras, plan = self.tf, self.keras, self.plan
        strategy, model, optimizer, objective = plan.strategy, self.model, self.optimizer, self.objective
        global_batch = self.section.batch_size
        per_replica = global_batch // plan.replicas
        loss_fn = objective.loss.__class__.from_config({**objective.loss.get_config(), "reduction": None})
        with strategy.scope():
            loss_mean = keras.metrics.Mean(name="loss")
            metrics = [m.__class__.from_config(m.get_config()) for m in objective.metrics]
        val_loss = keras.metrics.Mean(name="loss")
        val_metrics = [m.__class__.from_config(m.get_config()) for m in objective.metrics]
        augment, seed = self.augment, self.section.seed

        def replica_step(images, labels):
            if augment is not None:
                images, labels = augment(images, labels, tf.stack([tf.constant(seed, tf.int64),
                                                                   tf.cast(optimizer.iterations, tf.int64)]))
            with tf.GradientTape() as tape:
                predictions = model(images, training=True)
                per_item = tf.cast(loss_fn(labels, predictions), tf.float32)
                items = tf.cast(tf.size(per_item), tf.float32)
                # the global mean: this replica's sum over the items of the whole global batch
                loss = tf.reduce_sum(per_item) / (items / tf.cast(tf.shape(per_item)[0], tf.float32) * global_batch)
                if model.losses:
                    loss += tf.add_n(model.losses) / plan.replicas
                scaled = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            loss_mean.update_state(tf.reduce_mean(per_item), sample_weight=tf.cast(tf.shape(per_item)[0], tf.float32))
            for metric in metrics:
                metric.update_state(labels, predictions)

        @tf.function(jit_compile=self.section.jit_compile is True)
        def train_step(iterator):
            images, labels = next(iterator)
            strategy.run(replica_step, args=(images, labels))

        @tf.function
        def validate_step(images, labels):
            predictions = model(images, training=False)
            val_loss.update_state(objective.loss(labels, predictions), sample_weight=tf.cast(tf.shape(images)[0], tf.float32))
            for metric in val_metrics:
                metric.update_state(labels, predictions)

        def shard(epoch):
            def dataset(context):
                return pipeline.train_epoch(epoch, shard=(context.num_input_pipelines, context.input_pipeline_id,
                                                          per_replica)).prefetch(tf.data.AUTOTUNE)
            return dataset

        commit.begin()
        for epoch in range(start, epochs):
            began = time.perf_counter()
            for metric in [loss_mean, *metrics, val_loss, *val_metrics]:
                metric.reset_state()
            iterator = iter(strategy.distribute_datasets_from_function(shard(epoch)))
            bar = keras.utils.Progbar(steps_per_epoch) if tty and plan.chief else None
            if bar is not None:
                print(f"Epoch {epoch + 1}/{epochs}", file=out)
            for step in range(steps_per_epoch):
                train_step(iterator)
                if bar is not None:
                    bar.update(step + 1, [("loss", float(loss_mean.result()))])
            logs = {"loss": float(loss_mean.result()), **{m.name: float(m.result()) for m in metrics}}
            trained = time.perf_counter() - began
            validation = pipeline.validation()
            if validation is not None:
                for images, labels in validation:
                    validate_step(images, labels)
                logs.update({"val_loss": float(val_loss.result()), **{f"val_{m.name}": float(m.result()) for m in val_metrics}})
            stop = commit(epoch + 1, logs, trained)
            # the chief decides (early stopping): every worker leaves the loop after the same epoch
            flag = broadcast_from_chief(tf, strategy, [np.array([1.0 if stop else 0.0], np.float32)])[0]
            if flag[0] > 0.5:
                break


def augmenting_model(keras, tf, model, augment, seed):
    """`augment_on: device`: a training-only wrapper whose train_step augments the batch on
    the device first. Only the inner model is ever saved."""
    class AugmentingModel(keras.Model):
        def __init__(self):
            super().__init__(name=f"{model.name}_training")
            self.inner = model

        def call(self, inputs, training=False):
            return self.inner(inputs, training=training)

        def train_step(self, data):
            images, labels = data
            step = tf.cast(self.optimizer.iterations, tf.int64)
            images, labels = augment(images, labels, tf.stack([tf.constant(seed, tf.int64), step]))
            return super().train_step((images, labels))
    return AugmentingModel()
