"""`cnnbuild tune SPEC --trials N [--epochs E] [--out DIR] [--algorithm random|bayesian|hyperband]
[--max-params P] [--max-macs M] [--max-memory B]`: the spec's `search:` space (parse/search.py)
run by keras-tuner's oracles.

Every candidate is checked statically before it is trained. The pruning sits inside the
oracle (`populate_space`): a candidate whose spec is invalid, or over the budget (the spec's
`budget:` and the flags), is recorded in trials.csv with the check's message and the oracle
asked again, so it never becomes a trial, never counts against --trials and never costs a
second of training. MAX_REFUSALS candidates refused in a row end the search, naming the
budget. Each trained trial is an ordinary run folder, DIR/trials/trial_ID (resumable, its own
spec.yaml), trained by the families table like `cnnbuild train`.

keras-tuner keeps its resumable state in DIR/keras_tuner/ (a search cut short continues
where it was: an unfinished trial resumes from its run folder's checkpoint); its chief/worker
protocol (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT) shares one search
between processes: the chief holds the oracle, writes trials.csv and best.yaml; each worker
trains the trials it is given.

DIR/trials.csv: a row per candidate — its values, status (trained, over budget, invalid),
params, macs, the objective and val_accuracy, seconds. DIR/best.yaml: the best trial's spec
as a plain spec (its values written in, no `search:`).
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import keras_tuner as kt

from .. import runfolder
from ..errors import UsageError
from .candidates import Budget, figures_of

OBJECTIVE = "val_accuracy"
MAX_REFUSALS = 50            # candidates refused in a row before the search gives up on the budget
PROJECT = "keras_tuner"      # keras-tuner's own folder inside DIR
TRIALS_CSV, BEST = "trials.csv", "best.yaml"
ALGORITHMS = ("random", "bayesian", "hyperband")


@dataclass
class Search:
    """What a tune needs to judge and train a candidate."""

    spec_path: str
    dimensions: tuple
    budget: Budget
    epochs: Optional[int]
    out: Path
    rows: list = field(default_factory=list)      # trials.csv, in the order candidates came
    stopped: str = ""                             # why the search stopped early, if it did

    def overrides(self, values: dict) -> list:
        from ..parse.overrides import given
        chosen = [given(key, values[d.key], "search") for d in self.dimensions for key in (d.key,) if key in values]
        epochs = values.get("tuner/epochs") or self.epochs
        return chosen + ([given("train.epochs", int(epochs), "--epochs")] if epochs else [])

    def judge(self, values: dict):
        """(status, figures, message): 'ok', or why the candidate is refused, from the static check alone."""
        from .. import families
        from ..errors import SpecError
        try:
            spec = families.resolve_spec(self.spec_path, self.overrides(values))
        except SpecError as e:
            return "invalid", None, str(e.problems[0]).splitlines()[0]
        figures = figures_of(spec, families.of_spec(spec).check(spec, files_only=True))
        if not figures.valid:
            return "invalid", figures, figures.errors[0].splitlines()[0]
        over = figures.over_budget + self.budget.exceeded(figures)
        if over:
            return "over budget", figures, "; ".join(over)
        return "ok", figures, ""

    def record(self, values, status, figures=None, message="", objective=None, val_accuracy=None, seconds=None,
               run=""):
        row = {d.key: values.get(d.key) for d in self.dimensions}
        row.update({"status": status, "params": figures.params if figures else None,
                    "macs": figures.macs if figures else None, "objective": objective,
                    "val_accuracy": val_accuracy, "seconds": seconds, "run": run, "message": message})
        self.rows.append(row)
        self.write_rows()

    def write_rows(self):
        buffer = io.StringIO()
        names = [d.key for d in self.dimensions] + ["status", "params", "macs", "objective", "val_accuracy",
                                                    "seconds", "run", "message"]
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self.out.mkdir(parents=True, exist_ok=True)
        runfolder.atomic_write(self.out / TRIALS_CSV, buffer.getvalue())


class Pruning:
    """An oracle that checks each candidate statically before it becomes a trial (a mixin
    over keras-tuner's oracles: the sampling is theirs)."""

    search: Search = None

    def populate_space(self, trial_id):
        for _ in range(MAX_REFUSALS):
            result = super().populate_space(trial_id)
            if result["status"] != "RUNNING":
                return result
            status, figures, message = self.search.judge(result["values"])
            if status == "ok":
                return result
            self.search.record(result["values"], status, figures, message)
        self.search.stopped = (f"{MAX_REFUSALS} candidates in a row were refused ({message}); the search stopped: "
                               f"widen the budget ({self.search.budget.describe()}) or narrow the search space")
        return {"status": "STOPPED", "values": None}

    def end_trial(self, trial):
        super().end_trial(trial)
        trial = self.trials[trial.trial_id]      # the oracle's own record, scored
        metrics = trial.metrics.metrics

        def value(name):
            history = metrics[name].get_history() if name in metrics else []
            return history[-1].value[0] if history else None
        self.search.record(trial.hyperparameters.values, "trained" if trial.status == "COMPLETED" else
                           f"failed ({trial.status.lower()})", None, trial.message or "",
                           objective=trial.score, val_accuracy=value(OBJECTIVE), seconds=value("seconds"),
                           run=str(self.search.out / "trials" / f"trial_{trial.trial_id}"))
        row = self.search.rows[-1]
        row["params"], row["macs"] = (int(value(name)) if value(name) is not None else None for name in ("params", "macs"))
        self.search.write_rows()


class RandomPruning(Pruning, kt.oracles.RandomSearchOracle):
    pass


class BayesianPruning(Pruning, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandPruning(Pruning, kt.oracles.HyperbandOracle):
    pass


class Tuner(kt.engine.base_tuner.BaseTuner):
    """Runs a trial as `cnnbuild train` runs a spec: an ordinary run folder per trial."""

    def __init__(self, candidates: Search, oracle, **kwargs):
        self.candidates = candidates     # (BaseTuner's own `search` is the method that runs it)
        super().__init__(oracle, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        from .. import families
        values = trial.hyperparameters.values
        spec = families.resolve_spec(self.candidates.spec_path, self.candidates.overrides(values))
        family, checked = families.checked_for_training(spec)
        figures = figures_of(spec, checked)
        folder = self.candidates.out / "trials" / f"trial_{trial.trial_id}"
        began = time.perf_counter()
        metrics = family.train(spec, checked, out=folder, stdout=io.StringIO())
        accuracy = metrics.get(OBJECTIVE)
        if accuracy is None or not math.isfinite(accuracy):
            raise kt.errors.FailedTrialError(f"trial {trial.trial_id}: no {OBJECTIVE} (does the spec validate?)")
        return {OBJECTIVE: float(accuracy), "params": float(figures.params), "macs": float(figures.macs),
                "seconds": round(time.perf_counter() - began, 3)}

    def save_model(self, trial_id, model, step=0):
        pass        # each trial's run folder holds its model

    def load_model(self, trial):
        raise UsageError("a tuned trial's model is in its run folder (DIR/trials/trial_ID/model.keras)")


def space(dimensions) -> "kt.HyperParameters":
    """The search space as keras-tuner's HyperParameters."""
    hp = kt.HyperParameters()
    for d in dimensions:
        if d.choices:
            hp.Choice(d.key, list(d.choices))
        elif d.integer:
            hp.Int(d.key, d.low, d.high, step=d.step or 1, sampling="log" if d.log else "linear")
        else:
            hp.Float(d.key, float(d.low), float(d.high), step=d.step, sampling="log" if d.log else "linear")
    return hp


def tune(spec_path, trials: int, epochs: Optional[int] = None, out=None, algorithm: str = "random",
         budget: Budget = Budget(), seed: int = 0) -> dict:
    """Run the search (or continue the one in `out`); returns a summary: trials.csv's path,
    the best trial (its values, objective, run folder) and best.yaml's path."""
    from .. import families
    if algorithm not in ALGORITHMS:
        raise UsageError(f"--algorithm {algorithm}: expected one of {', '.join(ALGORITHMS)}")
    dimensions = families.search_space(spec_path)
    if not dimensions:
        raise UsageError(f"{spec_path}: has no `search:` section to tune",
                         "add one, e.g. search: {train.batch_size: [32, 64], train.optimizer.learning_rate: "
                         "{min: 1e-4, max: 1e-2, log: true}}")
    out = Path(out or Path("tune") / Path(spec_path).stem)
    search = Search(str(spec_path), dimensions, budget, epochs, out)
    _reload_rows(search)
    oracle_kinds = {"random": RandomPruning, "bayesian": BayesianPruning, "hyperband": HyperbandPruning}
    options = dict(objective=kt.Objective(OBJECTIVE, "max"), hyperparameters=space(dimensions),
                   tune_new_entries=False, seed=seed)
    if algorithm == "hyperband":
        options["max_epochs"] = epochs or 3
    else:
        options["max_trials"] = trials
    oracle = oracle_kinds[algorithm](**options)
    oracle.search = search
    tuner = Tuner(search, oracle, directory=str(out), project_name=PROJECT, overwrite=False)
    tuner.search(verbose=0)      # cnnbuild prints its own summary
    return _summary(search, oracle)


def _reload_rows(search: Search) -> None:
    """A continued search keeps the rows it wrote before."""
    path = search.out / TRIALS_CSV
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            search.rows = [dict(row) for row in csv.DictReader(f)]


def _summary(search: Search, oracle) -> dict:
    is_chief_or_alone = os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief" or \
        not os.environ.get("KERASTUNER_ORACLE_IP")
    best = oracle.get_best_trials(1) if hasattr(oracle, "get_best_trials") else []
    summary = {"trials_csv": str(search.out / TRIALS_CSV), "stopped": search.stopped,
               "trained": sum(1 for r in search.rows if r["status"] == "trained"),
               "refused": sum(1 for r in search.rows if r["status"] in ("invalid", "over budget"))}
    if best and is_chief_or_alone:
        trial = best[0]
        folder = search.out / "trials" / f"trial_{trial.trial_id}"
        resolved = (folder / runfolder.SPEC).read_text(encoding="utf-8")
        runfolder.atomic_write(search.out / BEST, resolved)
        summary.update({"best": {"values": trial.hyperparameters.values, "objective": trial.score,
                                 "run": str(folder)}, "best_yaml": str(search.out / BEST)})
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{summary['trained']} trial{'s' if summary['trained'] != 1 else ''} trained, {summary['refused']} "
             f"candidate{'s' if summary['refused'] != 1 else ''} refused by the static check before training; "
             f"every candidate: {summary['trials_csv']}"]
    if summary.get("stopped"):
        lines.append(summary["stopped"])
    if "best" in summary:
        best = summary["best"]
        shown = ", ".join(f"{k}={v}" for k, v in best["values"].items())
        lines.append(f"best: {OBJECTIVE} {best['objective']:.4f} with {shown} ({best['run']}); its spec: "
                     f"{summary['best_yaml']}")
    return "\n".join(lines)

