"""The `cnnbuild` command: parse arguments, call one function, print. Exit status: 0 ok,
1 invalid spec (or failed run, or an internal error: one paragraph, the traceback only with
CNNBUILD_DEBUG=1), 2 usage error or unreadable file."""
from __future__ import annotations

import argparse
import os
import sys

from .errors import SpecError, UsageError

COMMANDS = {}


def command(name, help):
    def add(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return add


def _parser():
    parser = argparse.ArgumentParser(prog="cnnbuild", description="Describe, check, train and ship a CNN from a YAML spec.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        fn(p, None)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _budget_args(p):
    p.add_argument("--max-params", type=_positive_int, help="refuse a model with more parameters than this")
    p.add_argument("--max-memory", type=_positive_int, metavar="BYTES",
                   help="refuse a model whose activations for one image exceed this")


def _load(path, args):
    import dataclasses

    from .spec import load_spec
    spec = load_spec(path, overrides=getattr(args, "overrides", None))
    if getattr(args, "max_params", None) or getattr(args, "max_memory", None):
        budget = dataclasses.replace(spec.budget, **{k: v for k, v in (("params", args.max_params),
                                                                       ("activation_bytes", args.max_memory)) if v})
        spec = dataclasses.replace(spec, budget=budget)
    return spec


@command("check", "check a spec without TensorFlow: shapes, rules, parameters, MACs, receptive fields")
def check(p, args):
    if args is None:
        p.add_argument("spec", help="the YAML spec")
        p.add_argument("--json", action="store_true", help="print one JSON document")
        _budget_args(p)
        return
    from .report import Report, format_table, infer
    try:
        spec = _load(args.spec, args)
    except SpecError as e:
        if args.json:
            print(Report.unparsed(e.problems).json())
            return 1
        raise
    report = infer(spec)
    if args.json:
        print(report.json())
    else:
        print(format_table(report))
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
        if report.valid:
            print(f"{args.spec}: ok")
    return 0 if report.valid else 1


@command("summary", "build the Keras model and print the static table beside Keras's summary")
def summary(p, args):
    if args is None:
        p.add_argument("spec")
        _budget_args(p)
        return
    from .build import build_model, differences, keras_summary
    from .report import format_table, infer
    spec = _load(args.spec, args)
    report = infer(spec)
    print(format_table(report))
    if not report.valid:
        raise SpecError(report.errors)
    model = build_model(spec, report)
    print(keras_summary(model))
    found = differences(report, model)
    if found:
        print(f"the static check and Keras DIFFER ({len(found)}):")
        for difference in found:
            print(f"  - {difference}")
        return 1
    top = sum(1 for row in report.rows if row.depth == 0)
    print(f"the static check and Keras agree: {report.params:,} parameters ({report.trainable_params:,} trainable, "
          f"{report.non_trainable_params:,} non-trainable), output {list(report.output)}, and the output shapes of "
          f"all {top} top-level layers")
    return 0


def _parse_sets(values):
    """--set dotted.key=value: the value is read as YAML (numbers, lists), at a command-line place."""
    from .errors import Where
    from .source import parse_text
    out = []
    for item in values or ():
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.epochs=3")
        key, text = item.split("=", 1)
        where = Where("--set", 1, 1, key)
        node = parse_text(f"v: {text}" if text.strip() else "v: ''", f"--set {key}").value["v"]
        node.where = where
        out.append((key, node))
    return out


@command("train", "train a spec's model on its data; resumes an unfinished run folder")
def train(p, args):
    if args is None:
        p.add_argument("spec")
        p.add_argument("--out", help="run folder (default runs/NAME/)")
        p.add_argument("--epochs", type=int, help="override train.epochs")
        p.add_argument("--data", help="override data.source (digits, shapes, a directory, an .npz file, …)")
        p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE", help="override any spec value")
        _budget_args(p)
        return
    from .train import cli_main
    args.overrides = _parse_sets(args.sets)
    return cli_main(args)


@command("export", "export a trained run as a verified SavedModel (or keras, onnx, tflite)")
def export(p, args):
    if args is None:
        p.add_argument("run_dir")
        p.add_argument("--out", help="destination (default RUN_DIR/export/FORMAT)")
        p.add_argument("--format", default="savedmodel", choices=["savedmodel", "keras", "onnx", "tflite"])
        return
    from .export import cli_main
    return cli_main(args)


@command("predict", "classify image files with an export (or a run folder)")
def predict(p, args):
    if args is None:
        p.add_argument("model", metavar="EXPORT_OR_RUN_DIR")
        p.add_argument("images", nargs="+", metavar="IMAGE")
        p.add_argument("--top", type=int, default=1, metavar="K", help="show the K most likely classes (default 1)")
        p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
        return
    from .predict import cli_main
    return cli_main(args)


@command("evaluate", "accuracy, per-class precision and recall, confusion matrix")
def evaluate(p, args):
    if args is None:
        p.add_argument("run_dir")
        p.add_argument("--data", help="evaluate on every image of another source (a class-folder directory, an .npz, "
                                      "digits, …) instead of the run's validation data")
        p.add_argument("--out", metavar="FILE.png", help="the confusion-matrix picture (default RUN_DIR/confusion_matrix.png; "
                                                          "the figures go beside it as .json)")
        p.add_argument("--json", action="store_true", help="print the figures as one JSON document")
        return
    from .evaluate import cli_main
    return cli_main(args)


@command("draw", "draw the architecture as SVG or PNG (pure Python)")
def draw(p, args):
    if args is None:
        p.add_argument("spec")
        p.add_argument("--out", help="FILE.svg or FILE.png (default NAME.svg)")
        return
    from .draw import cli_main
    return cli_main(args)


@command("schema", "print the JSON Schema of the spec language (for editors)")
def schema(p, args):
    if args is None:
        return
    from .schema import cli_main
    return cli_main(args)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    fn = COMMANDS[args.command][0]
    try:
        return fn(None, args) or 0
    except SpecError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"cnnbuild {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:   # the last resort: a bug in cnnbuild (or a case it does not know), never a raw traceback
        if os.environ.get("CNNBUILD_DEBUG"):
            raise
        print(internal_error(args.command, e), file=sys.stderr)
        return 1


MAX_MESSAGE = 500   # characters of the exception's text quoted (Keras's can run to pages)


def internal_error(command: str, error: Exception) -> str:
    """One paragraph for an exception nothing else caught: which command, what was raised,
    what to do about it."""
    message = " ".join(str(error).split())
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    raised = f"{type(error).__name__}: {message or '(no message)'}"
    if not raised.endswith((".", "!", "?", "…")):
        raised += "."
    return (f"cnnbuild {command}: internal error: {raised} "
            f"This is a bug in cnnbuild, not something the checker found in your spec; please report it with the "
            f"spec and this command line. Run again with CNNBUILD_DEBUG=1 to see the traceback.")


if __name__ == "__main__":
    sys.exit(main())
