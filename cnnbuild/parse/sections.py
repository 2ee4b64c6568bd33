"""The `data:`, `augment:` and `train:` sections of a spec: typed, validated, TensorFlow-free.

As with layer kinds, each dataclass's fields *are* the schema: `parse_fields` reads the YAML
into them and collects every problem with its file:line:column. The augmentation kinds are
defined in augment.py, each dataclass beside its TensorFlow step, and registered there in
AUGMENTATIONS; this module parses the `augment:` list against that registry. `parse_sections`
is what the spec parser calls; it also runs the checks that need the spec's input size (a
crop larger than the padded input, a cutout larger than the image), so `cnnbuild check`
reports them like any layer error. The training stage (train/ and augment.py) reads
these dataclasses and never looks at YAML. What each kind of data source accepts is asked of
its module in sources/ (the registry); the parser never looks at the disk.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from ..augment import AUGMENTATIONS, OpenUnitFloat
from ..errors import Invalid, Problem
from ..fields import NonNegativeInt, PositiveFloat, PositiveInt, Range
from ..records import record
from ..sources import location_of, section_error, section_limits, source_kind
from .values import did_you_mean, parse_fields
from .source import Node

NonNegativeFloat = Annotated[float, Range(0)]


# ── data: ──────────────────────────────────────────────────────────────────────────────────

@record(frozen=True)
class Source:
    """Where images come from (the `data:` section, or its separate `validation:` source).

    Attributes:
      source: `digits` (default: scikit-learn's 1,797 8×8 handwritten digits, offline),
        `shapes` (generated circles, squares and triangles with masks), `directory`, `npz`,
        `tfrecord`, `tfds`; or directly a path: a folder means directory, `x.npz` npz,
        `x.tfrecord` (or a glob such as `data/*.tfrec`) tfrecord, and `tfds:mnist` tfds.
      path: the folder or file, when `source` names the kind (`source: npz, path: x.npz`).
        Relative paths (here, in `source` and in `data_dir`) are read from the spec's own
        folder when training (from the working directory when given with --data or --set).
      samples: how many images `shapes` generates (default 2,000).
      name: the tensorflow-datasets name (tfds), e.g. `mnist`.
      split: the tfds split to read (default `train`).
      data_dir: where tfds keeps prepared datasets (default: tfds's own, ~/tensorflow_datasets).
      download: let tfds download and prepare a dataset that is not there yet (default false:
        offline, an unprepared dataset is an error).
      image_feature: tfrecord feature holding the encoded image (default `image`).
      label_feature: tfrecord feature holding the integer label (default `label`).
      mask_feature: tfrecord feature holding the encoded mask PNG, for segmentation
        (default `mask`).
    """

    source: str = "digits"
    path: Optional[str] = None
    samples: Annotated[int, Range(1, 10_000_000)] = 2000
    name: Optional[str] = None
    split: str = "train"
    data_dir: Optional[str] = None
    download: bool = False
    image_feature: str = "image"
    label_feature: str = "label"
    mask_feature: str = "mask"

    def __post_init__(self):
        error = section_error(self)      # the kind's own rules (sources/)
        if error is not None:
            raise error

    @property
    def kind(self) -> str:
        """A name in sources.SOURCES, from `source`."""
        return source_kind(self.source)[0]

    @property
    def location(self) -> Optional[str]:
        """The path (or tfds name) it reads: from `source`, else `path` (`name` for tfds)."""
        return location_of(self)


@record(frozen=True)
class Data(Source):
    """The `data:` section: the training images, the validation images and how to read them.

    Attributes:
      validation_split: the fraction held out for validation, chosen with `train.seed`
        (default 0.2 when no separate `validation:` source is given; 0 means no validation).
      validation: a separate validation source, with the same keys as `data:` (source, path, …).
      task: classification (one label per image), segmentation (one label per pixel), or
        auto (default): from the model's output, a vector or an H×W×K map.
      classes: class names in label order (default: folder names, the dataset's own names,
        or 0, 1, …).
      on_bad: `error` (default): a corrupt image, an empty class folder, a label out of range
        or an image whose channels do not fit stops with a message naming the file; `skip`:
        such files are left out and counted.
      max_pixels: the largest image (width × height, read from its header before decoding)
        training decodes, as predict does (default 50,000,000): a larger one is refused, or
        left out and named with `on_bad: skip` (a 1 MB PNG can decode to gigabytes).
      cache: where decoded, resized images are kept after the first epoch. `auto` (default):
        in memory when they fit `cache_budget`, else none (files are decoded again each
        epoch, so memory does not grow with the dataset); `memory` (or true); `disk` (a
        cache file in the run folder); `false` (stream every epoch).
      cache_budget: the memory, in MiB, a `cache: auto` in-memory cache may take (default a
        quarter of the machine's physical memory).
      shuffle_buffer: how many items the shuffle holds (default 10,000, or the whole set when
        smaller). Streamed data is shuffled before decoding, seeded by the epoch: a file list
        by a whole permutation each epoch (no buffer needed), records (tfrecord, packed
        shards, tfds) through a buffer of this many encoded records, read from 4 shards at a
        time in an order reshuffled each epoch. Cached data (`cache: memory | disk`, or
        `auto` when it fits) and arrays are shuffled after decoding, through a buffer of
        this many decoded images.
    """

    validation_split: Optional[Annotated[float, Range(0, 1, high_open=True)]] = None
    validation: Optional[Source] = None
    task: Literal["auto", "classification", "segmentation"] = "auto"
    classes: Optional[tuple[str, ...]] = None
    on_bad: Literal["error", "skip"] = "error"
    max_pixels: PositiveInt = 50_000_000     # predict's MAX_PIXELS: a 50-megapixel photo
    cache: Union[bool, Literal["auto", "memory", "disk"]] = "auto"   # bool first: a misspelt word gets the words' hint
    cache_budget: Optional[PositiveInt] = None
    shuffle_buffer: Annotated[int, Range(1, 100_000_000)] = 10_000

    def __post_init__(self):
        super().__post_init__()
        if self.validation is not None and self.validation_split:
            raise Invalid("give either 'validation_split' or a separate 'validation:' source, not both",
                          "remove one of them")

    @property
    def holdout(self) -> float:
        """The fraction of the training source held out for validation."""
        if self.validation is not None:
            return 0.0
        return 0.2 if self.validation_split is None else self.validation_split

    @property
    def has_validation(self) -> bool:
        return self.validation is not None or self.holdout > 0


# ── train: ─────────────────────────────────────────────────────────────────────────────────

OPTIMIZER_KEYS = {"momentum": ("sgd", "rmsprop"), "nesterov": ("sgd",), "beta_1": ("adam", "adamw"),
                  "beta_2": ("adam", "adamw"), "rho": ("rmsprop",)}


MAX_LEARNING_RATE = 10     # no optimizer trains above it: 1e30 trained lenet5 to a loss of 2e31 and exited 0
INF = float("inf")


@record(frozen=True)
class Optimizer:
    """The optimizer, by name with its arguments (`optimizer: sgd` or a mapping). Unset
    arguments take Keras's defaults.

    Attributes:
      name: sgd, adam (default), adamw, rmsprop.
      learning_rate: the base learning rate (default 0.001, Keras's; sgd's is 0.01).
      momentum: for sgd and rmsprop (Keras: 0).
      nesterov: Nesterov momentum, for sgd (default false).
      beta_1, beta_2: for adam and adamw (Keras: 0.9, 0.999).
      rho: for rmsprop (Keras: 0.9).
      epsilon: for adam, adamw, rmsprop (Keras: 1e-7).
      weight_decay: decoupled weight decay (adamw: Keras's 0.004 when unset; others: none).
      clipnorm: clip each gradient to this norm.
    """

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    learning_rate: Optional[PositiveFloat] = None
    momentum: Optional[Annotated[float, Range(0, 1, high_open=True)]] = None
    nesterov: Optional[bool] = None
    beta_1: Optional[Annotated[float, Range(0, 1, high_open=True)]] = None
    beta_2: Optional[Annotated[float, Range(0, 1, high_open=True)]] = None
    rho: Optional[Annotated[float, Range(0, 1, high_open=True)]] = None
    epsilon: Optional[PositiveFloat] = None
    weight_decay: Optional[NonNegativeFloat] = None
    clipnorm: Optional[PositiveFloat] = None

    def __post_init__(self):
        for key, names in OPTIMIZER_KEYS.items():
            if getattr(self, key) is not None and self.name not in names:
                raise Invalid(f"optimizer {self.name} takes no '{key}' (it is for {' and '.join(names)})",
                              "remove it, or choose " + " or ".join(names))
        if self.epsilon is not None and self.name == "sgd":
            raise Invalid("optimizer sgd takes no 'epsilon'", "remove it")
        rate = self.learning_rate
        if rate is not None and not (0 < rate <= MAX_LEARNING_RATE):   # NaN fails every comparison
            raise Invalid(f"learning rate {rate} is {'not a finite number' if rate != rate or rate in (INF, -INF) else 'above ' + str(MAX_LEARNING_RATE) if rate > 0 else 'not above 0'}: training "
                          "would diverge (or not move) and still exit as if it had trained",
                          "typical rates are 0.0001 to 0.1 (Adam's default 0.001, SGD's 0.01)", field="learning_rate")

    @property
    def base_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (0.01 if self.name == "sgd" else 0.001)


@record(frozen=True)
class Schedule:
    """How the learning rate changes during training (`schedule: cosine` or a mapping).

    Attributes:
      name: constant (default), step (multiply by `factor` every `every` epochs), cosine
        (from the base rate down to `final` × base over the run), warmup (linear warm-up,
        then constant).
      warmup_epochs: epochs of linear warm-up from 0 to the base rate, before any schedule
        (default 0; 1 for `warmup`).
      every: for step: epochs between decays (default 10).
      factor: for step: the multiplier at each decay (default 0.1).
      final: for cosine: the last rate as a fraction of the base rate (default 0).
    """

    name: Literal["constant", "step", "cosine", "warmup"] = "constant"
    warmup_epochs: Optional[NonNegativeInt] = None
    every: Optional[PositiveInt] = None
    factor: Optional[OpenUnitFloat] = None
    final: Optional[Annotated[float, Range(0, 1)]] = None

    def __post_init__(self):
        for key, owner in (("every", "step"), ("factor", "step"), ("final", "cosine")):
            if getattr(self, key) is not None and self.name != owner:
                raise Invalid(f"schedule {self.name} takes no '{key}' (it is for {owner})", f"remove it, or use name: {owner}")
        if self.name == "warmup" and self.warmup_epochs == 0:
            raise Invalid("schedule warmup needs warmup_epochs >= 1", "give warmup_epochs: 1 or more")

    @property
    def warmup(self) -> int:
        return self.warmup_epochs if self.warmup_epochs is not None else (1 if self.name == "warmup" else 0)


@record(frozen=True)
class EarlyStopping:
    """Stop when the monitored value has not improved for `patience` epochs
    (`early_stopping: true` for the defaults).

    Attributes:
      monitor: a logged value: val_loss (default), val_accuracy, loss, …
      patience: epochs without improvement before stopping (default 5).
      min_delta: the smallest change that counts as an improvement (default 0).
      mode: min, max, or auto (default: max for accuracy and IoU, min otherwise).
      restore_best: save the best epoch's weights as the final model instead of the last
        (default false, as Keras's restore_best_weights).
    """

    monitor: str = "val_loss"
    patience: PositiveInt = 5
    min_delta: NonNegativeFloat = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best: bool = False

    @property
    def maximize(self) -> bool:
        if self.mode != "auto":
            return self.mode == "max"
        return any(word in self.monitor for word in ("accuracy", "iou", "auc"))


METRICS = ("accuracy", "mean_iou", "top_5_accuracy")


@record(frozen=True)
class Train:
    """The `train:` section. Unset values are Keras's defaults (epochs 1, batch size 32, Adam).

    Attributes:
      epochs: how many passes over the training data (default 1, as Keras).
      batch_size: the global batch, split across replicas and workers (default 32).
      optimizer: sgd, adam (default), adamw, rmsprop, or a mapping with arguments.
      schedule: constant (default), step, cosine, warmup, or a mapping with arguments.
      loss: auto (default: sparse categorical cross-entropy, per pixel for segmentation;
        binary cross-entropy for one output unit), or a Keras loss name.
      from_logits: whether the model outputs logits (auto: no when it ends in softmax or
        sigmoid).
      label_smoothing: spread this much of each label's weight over all classes (default 0).
      metrics: accuracy, mean_iou, top_5_accuracy (default: accuracy; plus mean_iou for
        segmentation).
      seed: seeds weights, the validation split, shuffling, augmentation and dropout, so a
        run is reproducible (default 0).
      early_stopping: true, or a mapping (monitor, patience, …); default off.
      mixed_precision: auto (16-bit on GPU and TPU, float32 on CPU), float32, bfloat16, float16.
      jit_compile: XLA compilation: auto (default, as Keras), true, false.
      steps_per_execution: training steps run per call into TensorFlow (default 1; the
        multi_worker loop runs one step per call).
      strategy: auto (TPU when one is found, mirrored over several GPUs, multi_worker when
        TF_CONFIG names several workers, else default), default, mirrored, multi_worker, tpu.
      devices: replicas for mirrored (default: every GPU; without a GPU the CPU is split into
        this many logical devices).
      augment_on: where augmentation runs: data (the tf.data pipeline), device (inside the
        training step), auto (default: device on GPU, data on CPU and TPU).
      deterministic: make TensorFlow's ops deterministic, so reruns match bit for bit
        (default false: a little faster, reruns match to rounding).
      tensorboard: write TensorBoard event files in RUN/tensorboard/ (per-epoch values,
        learning rate, the model's graph); default false.
    """

    epochs: Annotated[int, Range(1, 1_000_000)] = 1
    batch_size: Annotated[int, Range(1, 1 << 20)] = 32
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    loss: Literal["auto", "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"] = "auto"
    from_logits: Literal["auto"] | bool = "auto"
    label_smoothing: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    metrics: Optional[tuple[Literal["accuracy", "mean_iou", "top_5_accuracy"], ...]] = None
    seed: Annotated[int, Range(0, 2**31 - 1)] = 0
    early_stopping: Optional[EarlyStopping] = None
    mixed_precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    jit_compile: Literal["auto"] | bool = "auto"
    steps_per_execution: Annotated[int, Range(1, 100_000)] = 1
    strategy: Literal["auto", "default", "mirrored", "multi_worker", "tpu"] = "auto"
    devices: Optional[Annotated[int, Range(1, MAX_DEVICES)]] = None
    augment_on: Literal["auto", "data", "device"] = "auto"
    deterministic: bool = False
    tensorboard: bool = False

    def __post_init__(self):
        if self.schedule.warmup >= self.epochs and self.schedule.warmup:
            raise Invalid(f"warmup_epochs {self.schedule.warmup} leaves no epoch after the warm-up of a "
                          f"{self.epochs}-epoch run", f"use warmup_epochs: {max(self.epochs - 1, 0)} or fewer, or more epochs")
        if self.loss == "sparse_categorical_crossentropy" and self.label_smoothing:
            raise Invalid("label_smoothing needs one-hot labels; sparse_categorical_crossentropy has none",
                          "use loss: auto (it switches to categorical_crossentropy) or categorical_crossentropy")
        if self.devices is not None and self.strategy not in ("mirrored", "auto"):
            raise Invalid(f"'devices' is for the mirrored strategy, not {self.strategy}", "remove it, or set strategy: mirrored")


# ── parsing ────────────────────────────────────────────────────────────────────────────────

# A scalar may stand for a mapping's main key: `optimizer: sgd` = `optimizer: {name: sgd}`.
_SHORTHANDS = {"optimizer": "name", "schedule": "name"}


def expand_shorthand(node: Node, key: str) -> Node:
    """`optimizer: sgd` → `{name: sgd}`; `early_stopping: true` → `{}`, false → null."""
    if key == "early_stopping" and isinstance(node.value, bool):
        return Node({}, node.where) if node.value else Node(None, node.where)
    if key in _SHORTHANDS and isinstance(node.value, str):
        main = _SHORTHANDS[key]
        return Node({main: Node(node.value, node.where)}, node.where, {main: node.where})
    return node


def _with_shorthands(node: Node) -> Node:
    if not node.is_map:
        return node
    value = {k: expand_shorthand(v, k) for k, v in node.value.items()}
    return Node(value, node.where, dict(node.keys))


def parse_data(node: Optional[Node], problems: list[Problem]) -> Data:
    if node is None:
        return Data()
    if isinstance(node.value, str):   # `data: shapes` or `data: path/to/folder`
        node = Node({"source": node}, node.where, {"source": node.where})
    if not node.is_map:
        problems.append(Problem(node.where, "'data' must be a source name or a mapping",
                                "e.g. data: digits, or data: {source: directory, path: data/flowers}"))
        return Data()
    return parse_fields(Data, node, problems) or Data()


def parse_augment(node: Optional[Node], input_shape, problems: list[Problem]) -> tuple:
    """A list of one-key mappings (`- rotate: 15`, `- crop: {padding: 4}`) or bare kinds (`- flip`)."""
    if node is None or node.value is None:
        return ()
    if not node.is_list:
        problems.append(Problem(node.where, "'augment' must be a list, e.g. [flip, {rotate: 10}]",
                                "write one augmentation per line: `- flip`, `- rotate: 10`"))
        return ()
    out = []
    for item in node.value:
        if isinstance(item.value, str):
            kind, body, at = item.value, Node(None, item.where), item.where
        elif item.is_map and len(item.value) == 1:
            kind, body = next(iter(item.value.items()))
            at = item.key_where(kind)
        else:
            problems.append(Problem(item.where, "an augmentation is a one-key mapping `kind: {arguments}` or a "
                                                "bare kind like `flip`", "e.g. `- rotate: 15`"))
            continue
        cls = AUGMENTATIONS.get(kind)
        if cls is None:
            problems.append(Problem(at, f"unknown augmentation '{kind}'", did_you_mean(kind, AUGMENTATIONS)))
            continue
        if body.value is None:
            body = Node({}, body.where)
        elif not body.is_map:
            body = Node({cls.main: body}, body.where, {cls.main: body.where})
        args = parse_fields(cls, body, problems)
        if args is None:
            continue
        try:
            args.check(input_shape)
        except Invalid as e:
            problems.append(Problem(body.where, e.message, e.hint))
            continue
        out.append(args)
    return tuple(out)


def parse_train(node: Optional[Node], problems: list[Problem]) -> Train:
    if node is None or node.value is None:
        return Train()
    if not node.is_map:
        problems.append(Problem(node.where, "'train' must be a mapping", "e.g. train: {epochs: 10, batch_size: 64}"))
        return Train()
    return parse_fields(Train, _with_shorthands(node), problems) or Train()


def metric_names(train: Train, task: str) -> tuple:
    """The metrics a run logs (Keras's names; validation adds `val_`)."""
    if train.metrics is not None:
        return tuple(dict.fromkeys(train.metrics))
    return ("accuracy", "mean_iou") if task == "segmentation" else ("accuracy",)


MAX_DEVICES = 64                 # mirrored replicas: a machine holds at most 16 GPUs; more CPU slices only slow it down


def parse_sections(top: dict, input_shape, problems: list[Problem]):
    """The spec parser's entry: (Data, augmentations, Train) from the top-level mapping,
    each problem appended with its place. Defaults when a section is absent."""
    data = parse_data(top.get("data"), problems)
    for key, message, hint in section_limits(data, input_shape):   # e.g. generated images over their budget
        at = top["data"].value.get(key, top["data"]) if top["data"].is_map else top["data"]
        problems.append(Problem(at.where, message, hint))
    augment = parse_augment(top.get("augment"), input_shape, problems)
    train = parse_train(top.get("train"), problems)
    stopping = train.early_stopping
    if stopping is not None and "train" in top:
        names = {"loss", *METRICS} | set(train.metrics or ())
        logged = names | ({f"val_{n}" for n in names} if data.has_validation else set())
        if stopping.monitor not in logged:
            where = top["train"].value.get("early_stopping", top["train"]).where
            hint = did_you_mean(stopping.monitor, sorted(logged))
            if stopping.monitor.startswith("val_") and not data.has_validation:
                hint = "there is no validation data (validation_split: 0): monitor 'loss', or hold out data"
            problems.append(Problem(where, f"early_stopping monitors '{stopping.monitor}', which is not logged", hint))
    return data, augment, train

