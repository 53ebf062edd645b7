"""``diffrec tune``: a grid or random search, each trial a normal run; a thin layer over ``diffrec_cli.tuning``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, err_console, handles_errors


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


class TuneReporter:
    """A progress bar over trials, the running trial's latest validation score, one line per finished trial."""

    def __init__(self, out: Console, *, live: bool = True) -> None:
        self.console = out
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=out,
                                 disable=not (live and out.is_terminal))
        self.task = None
        self.metric = "recall@20"

    def __call__(self, event: Any) -> None:
        from diffrec_cli.training.events import Evaluated
        from diffrec_cli.tuning import TrialFinished, TrialStarted, TuneFinished, TuneStarted

        if isinstance(event, TuneStarted):
            self.metric = event.metric
            self.console.print(f"tuning [bold]{event.model}[/] on [bold]{event.dataset}[/]: {event.strategy} search, "
                               f"{event.trials} trials over {', '.join(event.names)}; selecting on validation "
                               f"{event.metric} (tune {event.tune_id})")
            self.progress.start()
            self.task = self.progress.add_task("trials", total=event.trials, info="")
        elif isinstance(event, TrialStarted):
            params = " ".join(f"{k}={_fmt(v)}" for k, v in event.params.items())
            self.progress.update(self.task, info=f"trial {event.number}: {params}")
        elif isinstance(event, Evaluated):
            self.progress.update(self.task, info=f"epoch {event.epoch}: valid {event.metric} "
                                                 f"{event.valid[event.metric]:.4f}")
        elif isinstance(event, TrialFinished):
            t = event.trial
            self.progress.advance(self.task)
            params = " ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
            score = t.score(self.metric)
            what = f"valid {self.metric} {score:.4f}" if score is not None else (t.error or t.status)
            best = event.best
            mark = " *" if best is not None and best.number == t.number else ""
            self.progress.console.print(f"trial {t.number}/{event.total} {t.status}: {params} -> {what} "
                                        f"({t.seconds:.1f}s){mark}", highlight=False)
        elif isinstance(event, TuneFinished):
            self.progress.stop()


def results_table(result: Any, limit: int | None = None, *, show_runs: bool = True) -> Table:
    """Trials sorted by the validation metric (best first); failed and skipped trials last. ``show_runs``
    adds the run-id column (wide terminals: the ids are also in tune.json)."""
    from diffrec_cli.render.metrics import metric_label

    metric = result.metric
    names = list(result.space)
    table = Table(title=f"{result.model} on {result.dataset}: {len(result.trials)} trials, sorted by validation {metric}",
                  caption="test metrics are reported for information; selection uses validation only")
    k = metric.partition("@")[2]
    shown = (("valid", metric), ("valid", f"ndcg@{k}"), ("test", f"recall@{k}"), ("test", f"ndcg@{k}"))
    columns = [(split, key, f"{split} {metric_label(key)}") for split, key in shown]
    if metric == f"ndcg@{k}":
        columns.pop(1)
    headers = ["#", "trial", *names, *(c[2] for c in columns), "epoch", "s"] + (["run"] if show_runs else [])
    rows, styles = [], []
    ranked = result.ranked
    rest = [t for t in result.trials if t not in ranked]
    for rank, trial in enumerate([*ranked, *rest][:limit], start=1):
        scored = trial in ranked
        cells = [str(rank) if scored else "-", str(trial.number), *[_fmt(trial.params.get(n, "")) for n in names]]
        for split, key, _ in columns:
            value = getattr(trial, split).get(key)
            cells.append(f"{value:.4f}" if value is not None else "-")
        cells += [str(trial.best_epoch or "-"), f"{trial.seconds:.1f}"]
        if show_runs:
            note = "" if trial.status == "finished" else f" ({trial.status})"
            cells.append((trial.run_id or trial.error or "") + note)
        rows.append(cells)
        styles.append("bold" if rank == 1 and scored else None)
    for i, header in enumerate(headers):
        # values never shrink (a truncated setting or score is useless); headers wrap instead
        width = max([len(r[i]) for r in rows] + [1])
        left = header in names or header == "run"
        table.add_column(header, justify="left" if left else "right", min_width=width,
                         overflow="fold" if header == "run" else "ellipsis")
    for cells, style in zip(rows, styles):
        table.add_row(*cells, style=style)
    return table


@handles_errors
def tune_command(
    model: str = typer.Option("diffrec", "--model", "-m", autocompletion=complete.models, help="Registered model name."),
    dataset: str = typer.Option("demo", "--dataset", "-d", autocompletion=complete.datasets, help="Prepared dataset name."),
    space: Optional[Path] = typer.Option(None, "--space", help="TOML file: a \\[search] table (lists of choices, or "
                                         "{loguniform|uniform|int = \\[lo, hi]}) plus fixed settings. Default: the "
                                         "model's own space (the paper's §4.1.3 scopes for its models)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", "-s", autocompletion=complete.settings, help="Fixed key=value setting for every trial; repeatable."),
    strategy: str = typer.Option("auto", "--strategy", help="grid, random, or auto (grid when it fits --max-trials)."),
    max_trials: Optional[int] = typer.Option(None, "--max-trials", help="At most this many trials (random: default 20)."),
    timeout: Optional[str] = typer.Option(None, "--timeout", help="Stop after this long (e.g. 900, 15m, 2h); the "
                                          "running trial stops at the deadline and its best evaluation counts."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs per trial."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random search (each trial trains with the `seed` setting)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of tables."),
    live: bool = typer.Option(True, "--live/--no-live", help="Progress bar on a terminal."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="TUNE_ID",
                                         help="Continue an interrupted search: finished trials are kept, the "
                                              "interrupted one resumes, the rest run."),
    home: HomeOption = None,
) -> None:
    """Search hyper-parameters. Each trial is a normal run with its own run directory; trials are ranked by
    validation Recall@20 (the `metric` setting), and the selected trial's test metrics are reported, never
    used for selection. The summary is saved as HOME/tunes/TUNE_ID/tune.json."""
    from diffrec_cli.cli.common import registry
    from diffrec_cli.config import parse_sets
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.training.events import silent
    from diffrec_cli.convert import parse_duration
    from diffrec_cli.cli.stopping import StopSignals
    from diffrec_cli.tuning import default_space, read_space_file, resume_tune, tune

    reg = registry()
    reporter = silent if as_json else TuneReporter(console, live=live)
    with StopSignals() as stops:
        try:
            if resume is not None:
                result = resume_tune(resume, reg, home=DataHome(home), timeout=parse_duration(timeout),
                                     reporter=reporter)
            else:
                search, fixed = read_space_file(space) if space is not None else (default_space(reg, model), {})
                fixed.update(parse_sets(sets))
                if epochs is not None:
                    fixed["epochs"] = epochs
                result = tune(model, dataset, reg, home=DataHome(home), space=search, fixed=fixed,
                              strategy=strategy, max_trials=max_trials, timeout=parse_duration(timeout), seed=seed,
                              reporter=reporter)
        except KeyboardInterrupt:  # stopped before any trial scored (tuning raises it then)
            err_console.print("interrupted before any trial finished", highlight=False)
            raise typer.Exit(stops.exit_code) from None
        finally:
            if isinstance(reporter, TuneReporter):
                reporter.progress.stop()  # also when no trial scored: the error line must not sit under a live bar
    _print_result(result, as_json)
    if result.interrupted:
        raise typer.Exit(stops.exit_code)


def _print_result(result: Any, as_json: bool) -> None:
    from diffrec_cli.tuning import TUNE_FILE

    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console.print(results_table(result, show_runs=console.width >= 150))
    best = result.best
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    k = result.metric.partition("@")[2]
    console.print(f"selected trial {best.number} ({params}): valid {result.metric} {best.score(result.metric):.4f}; "
                  f"test recall@{k} {best.test.get(f'recall@{k}', float('nan')):.4f}, "
                  f"ndcg@{k} {best.test.get(f'ndcg@{k}', float('nan')):.4f} (reported, not used for selection)",
                  highlight=False)
    if result.interrupted:
        console.print("interrupted (Ctrl-C): the remaining trials were skipped")
    if result.timed_out:
        console.print(f"stopped by --timeout after {result.seconds:.0f}s; skipped trials are listed last")
    console.print(f"selected run: {best.run_path}")
    console.print(f"summary: {result.path / TUNE_FILE}")
