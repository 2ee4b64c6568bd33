"""What a network family is: one row of the families table (families/__init__.py).

A family says how its specs are recognised, parsed and checked, which networks they hold,
and what each command does with them and with their runs. The stages (parse, check,
assemble, train, serve) know nothing of families: a family composes them, and the command
line and the Python API ask the table. Adding a family is one module (or package) here that
builds a `Family`, plus its tests.

The contract, field by field:

  name          the family's word in messages and in `check --json` ("classifier", "gan")
  title         its name in a sentence ("GAN", "classifier")
  description   the family in a few words (the JSON Schema's description)
  marks         top-level keys that make a spec file the family's (none: the default family)
  spec_type     the class of its parsed specs
  parse         (tree, resolved=…, problems=…) → the family's spec, or SpecError
  check         (spec, files_only) → a Checked: `valid`, `errors`, `warnings`, `table()`,
                `document()` (check --json), and what training needs; TensorFlow never imported.
                `files_only`: the data is looked at only where the spec names files (`check`);
                False before training (a built-in source's class count too)
  networks      (spec, checked) → [(role, Spec, Report)]: each network as an ordinary spec,
                what `summary` builds and `draw` draws ("" for a family of one network)
  with_budget   (spec, max_params, max_memory) → spec: --max-params / --max-memory applied
  train         (spec, checked, out, stdout) → metrics: the family's models and step run by
                the one training session (train/)
  owns_run      (folder) → bool: is this run or export folder one of the family's
  export        (run, out, format) → the lines `cnnbuild export` prints
  evaluate      (run, options) → an Evaluated (document and text); options: the command's
                arguments by name ("trusted": --trust-model, run a SavedModel whatever ops it holds)
  sample        (run, n, class, seed, out, trusted=) → what was written; None when the family has no sampler
  predict       (model, images, top, out, batch_size, trusted=) → predictions; None when the family does not classify
  optimizers    key paths of the family's own optimizer sections (written out as shorthands)
  spec_files    key paths that name a network's spec file (made absolute for the run folder)
  schema        (generator, the spec schema) → the family's JSON Schema, or None
  verbs_hint    what to run instead when a command the family lacks is asked of its run
"""
from __future__ import annotations

from typing import Callable, Optional

from ..records import record


@record(frozen=True)
class Family:
    name: str
    title: str
    description: str
    marks: tuple
    spec_type: type
    parse: Callable
    check: Callable
    networks: Callable
    with_budget: Callable
    train: Callable
    owns_run: Callable
    export: Callable
    evaluate: Callable
    sample: Optional[Callable] = None
    predict: Optional[Callable] = None
    optimizers: tuple = ()
    spec_files: tuple = ()
    schema: Optional[Callable] = None
    verbs_hint: str = ""


@record(frozen=True)
class Evaluated:
    """What `cnnbuild evaluate` prints: the figures as one JSON document, or as text."""

    document: dict
    text: str
