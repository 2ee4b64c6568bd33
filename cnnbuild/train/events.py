"""TensorBoard event files for a run (`train: {tensorboard: true}` or `--tensorboard`):
RUN/tensorboard/ holds, written with tf.summary, the model's graph and one point per epoch
of every value history.csv holds (loss, metrics, val_*, learning_rate, seconds, images/s).

The events are derived from the history, as history.csv is: each session rewrites them from
the checkpoint it resumed from and then adds each epoch as it is committed, so what
TensorBoard shows always equals history.csv, after any kill. Only the chief writes.
    tensorboard --logdir runs/
"""
from __future__ import annotations

from pathlib import Path

from .. import runfolder

EVENT_FILES = "events.out.tfevents.*"


class EventLog:
    """One session's event file in RUN/tensorboard/."""

    def __init__(self, tf, folder, model, image_shape, rows):
        self.tf = tf
        board = Path(folder) / runfolder.TENSORBOARD
        for old in board.glob(EVENT_FILES):      # derived data: rewritten below from the checkpoint's rows
            old.unlink(missing_ok=True)
        board.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(board))
        # what tf.summary.scalar writes, spelled out: that function is TensorBoard's (a package
        # cnnbuild does not need); the scalars plugin reads a float tensor with this metadata
        # (its content, ScalarPluginData version 0, serialises to no bytes)
        self.scalar = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars", content=b""))
        self.graph(model, image_shape)
        for row in rows:
            self.epoch(row)

    def graph(self, model, image_shape):
        """The model's forward pass as a graph (TensorBoard's Graphs tab), traced once."""
        tf = self.tf

        @tf.function
        def forward(images):
            return model(images, training=False)

        tf.summary.trace_on(graph=True, profiler=False)
        forward(tf.zeros((1, *image_shape), tf.float32))
        with self.writer.as_default():
            tf.summary.trace_export(name=model.name, step=0)
        self.writer.flush()

    def epoch(self, row):
        """One history row: each value a scalar at step = the epoch (1-based)."""
        tf = self.tf
        with self.writer.as_default():
            for name, value in row.items():
                if name != "epoch":
                    tf.summary.write(name, tf.constant(float(value), tf.float32), step=int(row["epoch"]),
                                     metadata=self.scalar)
        self.writer.flush()

    def close(self):
        self.writer.close()
