"""A GAN spec: a generator G(z) and a discriminator D(x) trained as a pair (seed 004).

A GAN spec is a spec file whose top level has `generator:` and `discriminator:` (each an
inline spec or a path to one) and a `gan:` section. `GanSpec` is what the later stages read:
the two networks as ordinary `Spec`s whose `input` is already what the built Keras body
receives, so `check.infer` on each gives exactly the built model's shapes and counts.

Conditioning (`gan.conditional: true`, the seeds' D(x|y), G(z|y)) follows Keras's
conditional-GAN example: the label y (0 … K−1) is one-hot encoded and joined to the noise,
G's body reads z‖y of length noise + K; D's body reads the image with K constant channels
joined, H×W×(C + K).

    name: dcgan_digits
    gan: {noise: 64, conditional: true}
    generator:                 # input: filled in as [noise (+ K)]
      layers: [...]
    discriminator:             # input: the image, [H, W, C]; its last layer gives one score
      input: [16, 16, 1]
      layers: [...]
    data: {source: digits}
    train: {epochs: 30, batch_size: 64}
"""
from __future__ import annotations

import os
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal, Optional

from ...errors import Invalid, Problem, SpecError, UsageError, Where
from ...fields import PositiveInt, Range
from ...records import record
from ...parse.blocks import parse_blocks
from ...parse.names import NAME
from ...parse.parser import Spec, _input as image_input, from_node
from ...parse.sections import Data, Optimizer, Train, expand_shorthand, parse_sections
from ...parse.source import Node, load
from ...parse.values import MAX_UNKNOWN, coerce, did_you_mean, parse_fields

# DCGAN's optimizer (Radford et al. 2016): Adam, learning rate 2e-4, beta_1 0.5.
DCGAN_OPTIMIZER = Optimizer(name="adam", learning_rate=2e-4, beta_1=0.5)


@record(frozen=True)
class Gan:
    """The `gan:` section of a GAN spec.

    Attributes:
      noise: the length of the noise vector z, drawn from a standard normal (default 100, as DCGAN).
      conditional: join the class label y to G's noise and to D's input, as the seeds'
        G(z|y) and D(x|y) (default false).
      classes: how many labels y takes (default: the data's class count).
      loss: non_saturating (default: G maximises log D(G(z)), the variant that trains),
        minimax (G minimises log(1 − D(G(z))), the seeds' objective as written), hinge.
      discriminator_steps: the seeds' k: discriminator updates before each generator update (default 1).
      generator_optimizer: G's optimizer (default adam, learning rate 2e-4, beta_1 0.5, as DCGAN).
      discriminator_optimizer: D's optimizer (default as G's).
      samples_per_class: columns of the per-epoch sample grid (default 8); it has one row per
        class when conditional, else 8 rows.
    """

    noise: Annotated[int, Range(1, 100_000)] = 100
    conditional: bool = False
    classes: Optional[PositiveInt] = None
    loss: Literal["non_saturating", "minimax", "hinge"] = "non_saturating"
    discriminator_steps: Annotated[int, Range(1, 100)] = 1
    generator_optimizer: Optimizer = DCGAN_OPTIMIZER
    discriminator_optimizer: Optimizer = DCGAN_OPTIMIZER
    samples_per_class: Annotated[int, Range(1, 64)] = 8


@record(frozen=True)
class GanSpec:
    """A parsed GAN spec.

    generator.input is (noise + K,) when conditional, else (noise,); discriminator.input is
    (H, W, C + K) when conditional, else image_shape. `classes` is K (0 when unconditional).
    `places` holds where the spec wrote its keys (`gan.classes`, `discriminator.input`, …),
    for the check of the pair (check/gan.py) to point at."""

    name: str
    generator: Spec
    discriminator: Spec
    image_shape: tuple          # (H, W, C): what G makes, what D judges, what the data is read at
    gan: Gan = Gan()
    classes: int = 0
    file: str = "<spec>"
    description: str = ""
    resolved: dict = field(default_factory=dict, compare=False)   # the YAML as parsed, overrides applied
    where: Where = Where("<spec>", 1, 1)
    data: Data = Data()
    augment: tuple = ()
    train: Train = Train()
    places: dict = field(default_factory=dict, compare=False)   # key path ('gan.classes', 'discriminator.input', …) → Where
    params: tuple = ()           # (name, value) pairs: the top-level parameters' values (parse/params.py)
    variant: Optional[str] = None

    def place(self, path: str) -> Where:
        """Where the spec wrote the key at `path` (the spec's start, naming the path, when it did not)."""
        return self.places.get(path) or self.where.at(path)


TOP_KEYS = ("name", "description", "params", "variants", "gan", "generator", "discriminator", "blocks", "data", "augment", "train")
ROLES = ("generator", "discriminator")
# What an inline network may hold; a network read from its own spec file may hold that file's
# data, augment and train too, which are not used (the GAN spec's own are).
NETWORK_KEYS = ("name", "description", "input", "layers", "blocks", "rounding", "budget")
UNUSED_IN_FILE = ("data", "augment", "train")
# train: keys a classifier's training reads and a GAN's does not, with what to write instead.
NOT_FOR_GAN = {
    "optimizer": "a GAN has two optimizers: set gan.generator_optimizer and gan.discriminator_optimizer "
                 "(default adam, learning rate 2e-4, beta_1 0.5, as DCGAN)",
    "schedule": "a GAN trains at constant learning rates: remove it, or lower gan.generator_optimizer's and "
                "gan.discriminator_optimizer's learning_rate",
    "loss": "set gan.loss: non_saturating (default), minimax or hinge",
    "from_logits": "remove it: the discriminator gives a logit, or a probability when it ends in sigmoid, and the "
                   "GAN loss reads which",
    "label_smoothing": "remove it: the GAN losses use labels 1 (data) and 0 (generated)",
    "metrics": "remove it: a GAN run logs D loss, G loss, D(x) and D(G(z)) each epoch",
    "early_stopping": "remove it: GAN losses do not say when samples are good; look at the run's samples/ instead",
}


def gan_from_node(root: Node, resolved: dict | None = None, problems=()) -> GanSpec:
    """A GAN spec's Node tree (overrides applied, see load.py) → a GanSpec, or SpecError with
    every problem found: in the GAN's own keys and in both networks."""
    problems: list[Problem] = list(problems)
    top = root.value
    places = {key: root.key_where(key) for key in top}
    for key in [k for k in top if k not in TOP_KEYS][:MAX_UNKNOWN]:
        hint = did_you_mean(key, TOP_KEYS)
        if key in ("input", "layers"):
            hint = f"a GAN spec's networks have their own '{key}': move it under generator: or discriminator:"
        problems.append(Problem(root.key_where(key), f"unknown top-level key '{key}' in a GAN spec", hint))
    name = _name(top, "gan", problems)
    gan = _gan_section(top.get("gan"), problems, places)
    image_shape, classes = (1, 1, 1), 0
    networks = {}
    for role in ROLES:
        node = top.get(role)
        if node is None:
            problems.append(Problem(root.where, f"missing '{role}:'", f"add '{role}:' with its layers, or the path of "
                                    f"a spec file: {role}: {role}.yaml"))
            continue
        network = _network_root(role, node, root, problems, places)
        if network is not None:
            networks[role] = (network, node.is_map)   # inline (a mapping), or a spec file's root
    discriminator = networks.get("discriminator", (None,))[0]
    if discriminator is not None and "input" not in discriminator.value:
        problems.append(Problem(discriminator.where, "the discriminator has no 'input:'", "give the image size, which "
                                "the generator makes and the data is read at: input: [height, width, channels], e.g. "
                                "input: [8, 8, 1] for the digits"))
    elif discriminator is not None:
        image_shape = image_input(discriminator.value["input"], discriminator, problems)
        places["discriminator.input"] = discriminator.value["input"].where
    sections = {key: top[key] for key in ("data", "augment") if key in top}
    if "train" in top:
        sections["train"] = _gan_train(top["train"], problems)
    data, augment, train = parse_sections(sections, image_shape, problems)
    written = gan is not None    # else the gan: section's problems are reported, and its defaults stand in
    if written:
        classes = _classes(gan, data, root, places, problems)
    gan = gan or Gan()
    joined = classes if gan.conditional else 0    # K: the one-hot label's length, joined to each network's input
    inputs = {"generator": (gan.noise + joined,), "discriminator": (*image_shape[:2], image_shape[2] + joined)}
    specs = {}
    shared = top.get("blocks")
    parse_blocks(shared, problems)   # checked here once, whichever network uses them
    for role, (network, inline) in networks.items():
        if role == "generator" and written:
            _written_noise_input(network, gan, joined, problems, places)
        spec = _parse_network(role, network, inputs[role], shared if inline else None, problems)
        if spec is not None:
            specs[role] = spec
    problems = list(dict.fromkeys(problems))   # shared blocks are parsed with each network: their problems once
    if problems or len(specs) < 2:
        raise SpecError(problems)
    return GanSpec(name=name, generator=specs["generator"], discriminator=specs["discriminator"],
                   image_shape=tuple(image_shape), gan=gan, classes=joined, file=root.where.file,
                   description=_description(top), resolved=resolved or {}, where=root.where,
                   data=data, augment=augment, train=train, places=places)


def _name(top: dict, default: str, problems: list) -> str:
    node = top.get("name")
    if node is None:
        return default
    if not isinstance(node.value, str) or not NAME.match(node.value):
        problems.append(Problem(node.where, f"name {node.value!r} must start with a letter and use letters, digits and _",
                                "e.g. name: dcgan_digits"))
        return default
    return node.value


def _description(top: dict) -> str:
    node = top.get("description")
    return node.value if node is not None and isinstance(node.value, str) else ""


def _gan_section(node: Optional[Node], problems: list, places: dict) -> Optional[Gan]:
    """The `gan:` section (its optimizers may be a bare name: `generator_optimizer: sgd`), or
    None after a problem."""
    if node is None or node.value is None:
        return Gan()
    if not node.is_map:
        problems.append(Problem(node.where, "'gan' must be a mapping", "e.g. gan: {noise: 64, conditional: true}"))
        return None
    places.update({f"gan.{key}": node.key_where(key) for key in node.value})
    optimizers = ("generator_optimizer", "discriminator_optimizer")
    value = {key: expand_shorthand(child, "optimizer") if key in optimizers else child for key, child in node.value.items()}
    return parse_fields(Gan, Node(value, node.where, dict(node.keys)), problems)


def _gan_train(node: Node, problems: list) -> Node:
    """The `train:` section without the keys a GAN does not read, each refused with what to
    write instead."""
    if not node.is_map:
        return node   # parse_sections says what a train section must be
    for key in node.value:
        if key in NOT_FOR_GAN:
            problems.append(Problem(node.key_where(key), f"train.{key} means nothing for a GAN", NOT_FOR_GAN[key]))
    kept = {key: child for key, child in node.value.items() if key not in NOT_FOR_GAN}
    return Node(kept, node.where, {key: node.key_where(key) for key in kept})


def _network_root(role: str, node: Node, root: Node, problems: list, places: dict) -> Optional[Node]:
    """The Node tree of one network: the inline mapping, or the root of the spec file it names
    (read relative to the GAN spec's folder). None after a problem."""
    places[role] = node.where
    if isinstance(node.value, str) and node.value:
        folder = _folder(root.where.file)
        path = Path(folder, os.path.expanduser(node.value))
        try:
            network = load(path)
        except UsageError as e:
            problems.append(Problem(node.where, f"cannot read the {role} spec: {e}", f"the path is read from {folder}"))
            return None
        except SpecError as e:
            problems.extend(e.problems)
            problems.append(Problem(node.where, f"{role} spec {node.value} has {len(e.problems)} error"
                                    f"{'s' if len(e.problems) != 1 else ''} (above)", f"fix that spec first: cnnbuild check {path}"))
            return None
        if not network.is_map:
            problems.append(Problem(network.where, f"the {role} spec must be a mapping with 'layers'",
                                    "start the file with 'name: ...' and 'layers:'"))
            return None
        allowed = NETWORK_KEYS + UNUSED_IN_FILE
    elif node.is_map:
        network, allowed = node, NETWORK_KEYS
    else:
        problems.append(Problem(node.where, f"'{role}' must be a mapping (input, layers, ...) or the path of a spec file",
                                f"e.g. {role}: {{layers: [...]}}, or {role}: {role}.yaml"))
        return None
    for key in [k for k in network.value if k not in allowed][:MAX_UNKNOWN]:
        hint = did_you_mean(key, allowed)
        if key in TOP_KEYS:
            hint = f"'{key}' belongs at the GAN spec's top level, beside generator: and discriminator:"
        problems.append(Problem(network.key_where(key), f"unknown key '{key}' in the {role}", hint))
    return network


def _folder(file: str) -> str:
    return str(Path(file).resolve().parent) if file and not file.startswith("<") else str(Path.cwd())


def _written_noise_input(network: Node, gan: Gan, classes: int, problems: list, places: dict) -> None:
    """The generator's `input:` is filled in as [noise (+ classes)]; one written that differs is refused."""
    node = network.value.get("input")
    if node is None:
        return
    places["generator.input"] = node.where
    expected = [gan.noise + classes]
    try:
        written = list(coerce(node, tuple[int, ...]))
    except Invalid:   # not a list of numbers: it differs, and is quoted as written
        written = node.plain()
    if written != expected:
        made = f"gan.noise {gan.noise} + {classes} classes = {gan.noise + classes}" if classes else f"gan.noise {gan.noise}"
        problems.append(Problem(node.where, f"the generator's input is [noise{' + classes' if classes else ''}] = {expected} "
                                f"({made}), but it says {written}",
                                "remove 'input:' from the generator (it is filled in)"
                                + (", or set gan.noise" if not classes else ", or set gan.noise (the one-hot label adds the classes)")))


def _parse_network(role: str, network: Node, input_shape: tuple, shared: Optional[Node], problems: list):
    """One network as an ordinary Spec whose input is `input_shape`, the `shared` blocks (the
    GAN spec's top-level `blocks:`, for an inline network) joined to its own; None after a
    problem (added to `problems`)."""
    values = {key: child for key, child in network.value.items() if key in NETWORK_KEYS}
    keys = {key: network.key_where(key) for key in values}
    if "name" not in values:
        values["name"], keys["name"] = Node(role, network.where), network.where
    if shared is not None and shared.is_map:
        own = values.get("blocks")
        merged = dict(shared.value)
        for block, body in (own.value.items() if own is not None and own.is_map else ()):
            if block in merged:
                problems.append(Problem(own.key_where(block), f"block '{block}' is defined twice: at the top level and "
                                        f"in the {role}", "rename one of them, or remove the copy in the "
                                        f"{role}: the top level's blocks are shared by both networks"))
            merged[block] = body
        values["blocks"] = Node(merged, shared.where, {**shared.keys, **(own.keys if own is not None else {})})
    try:
        return from_node(Node(values, network.where, keys), input_shape=input_shape)
    except SpecError as e:
        problems.extend(e.problems)
        return None


def _classes(gan: Gan, data: Data, root: Node, places: dict, problems: list) -> int:
    """K, the number of labels: gan.classes, else the data's class count when its source knows
    it without reading the data (sources.static_classes: the built-in sources, `data.classes`,
    a directory's class folders, …). 0 when unconditional."""
    if not gan.conditional:
        return 0
    if gan.classes is not None:
        return gan.classes
    from ...sources import labels_from_folders, static_classes
    where = places.get("gan.conditional", root.where)
    folder = _folder(root.where.file)
    names = static_classes(data, folder)
    if names:
        return len(names)
    if labels_from_folders(data):
        location = Path(folder, Path(data.location).expanduser())
        problems.append(Problem(where, f"a conditional GAN needs the number of classes, and the data folder {location} "
                                + ("has no class sub-folders" if names is not None else "cannot be listed"),
                                "put each class's images in a folder of its own, or give gan: {classes: K}"
                                if names is not None else "give it: gan: {classes: K}, or fix data.path"))
        return 1
    problems.append(Problem(where, f"a conditional GAN needs the number of classes, which a {data.kind} source does "
                            "not say before it is read", "give it: gan: {classes: K} (or data.classes: [names])"))
    return 1
