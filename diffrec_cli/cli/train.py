"""``diffrec train``: parse settings, call the library's ``train``, print the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, err_console, handles_errors, registry
from diffrec_cli.errors import DiffrecError


@handles_errors
def train_command(
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.models, help="Registered model name \\[default: diffrec]."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", autocompletion=complete.datasets, help="Prepared dataset name \\[default: demo]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file of settings (\\[train] and \\[model] tables or flat keys)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", "-s", autocompletion=complete.settings, help="key=value setting; repeatable (e.g. --set steps=40 --set lr=5e-4)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (default: bf16 where a start-up probe finds it 1.3x faster), fp32 or bf16."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed; the same seed gives the same run \\[default: 1]."),
    live: bool = typer.Option(True, "--live/--no-live", help="Live panel on a terminal; --no-live prints plain lines."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final table."),
    samples: int = typer.Option(3, "--samples", help="Show top-10 recommendations for this many users at the end."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN", autocompletion=complete.runs,
                                         help="Continue RUN from its latest resumable state (only --epochs and "
                                              "--set epochs=/patience= may change)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", metavar="N",
                                                   help="Save a resumable state every N epochs \\[default: at "
                                                        "every evaluation]."),
    nproc: Optional[int] = typer.Option(None, "--nproc", metavar="N",
                                        help="Train data-parallel over users in N processes on this machine "
                                             "(one GPU each on CUDA); see docs/distributed.md."),
    home: HomeOption = None,
) -> None:
    """Train a model; early stopping on validation Recall@20; writes a run directory with a checkpoint.

    Metrics rank every unseen item and average over users with at least one ground-truth item in the split.
    """
    from diffrec_cli.cli.stopping import StopSignals
    from diffrec_cli.config import parse_sets, read_toml, resolve_settings
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.training.job import resume_training, train

    _quiet_unless_first_rank()
    if nproc is not None:
        _launch(nproc, resume is not None, read_toml(config) if config else {}, parse_sets(sets), model)
    with StopSignals() as stops:
        try:
            if resume is not None:
                _refuse_with_resume(model=model, dataset=dataset, config=config, device=device,
                                    precision=precision, seed=seed, checkpoint_every=checkpoint_every)
                changes = {**parse_sets(sets), **({"epochs": epochs} if epochs is not None else {})}
                outcome = resume_training(resume, registry(), home=DataHome(home), changes=changes,
                                          reporter=_reporter(quiet, live))
            else:
                settings = resolve_settings(read_toml(config) if config else {}, parse_sets(sets), model=model,
                                            dataset=dataset, epochs=epochs, device=device, precision=precision,
                                            seed=seed, checkpoint_every=checkpoint_every)
                outcome = train(settings, registry(), home=DataHome(home), reporter=_reporter(quiet, live))
        except KeyboardInterrupt:
            console.print("stopped before training began; no evaluation yet")
            raise typer.Exit(stops.exit_code) from None
    _print_outcome(outcome, samples, quiet)
    from diffrec_cli.training.distributed import leave

    leave()
    if outcome.result.interrupted:
        raise typer.Exit(stops.exit_code)


def _quiet_unless_first_rank() -> None:
    """In a data-parallel job rank 0 speaks for all; the first rank on each other machine still prints its
    errors (its data home may differ), the others print nothing."""
    from diffrec_cli.training.distributed import launched_local_rank, launched_rank

    console.quiet = console.quiet or launched_rank() != 0
    err_console.quiet = err_console.quiet or launched_local_rank() != 0


def _launch(nproc: int, resuming: bool, toml: dict, sets: dict, model: Optional[str]) -> None:
    """``--nproc N``: the same command in N ranks through torch.distributed.run; exits with their status."""
    from diffrec_cli.cli.launch import check_launch, launch, relaunch_argv
    from diffrec_cli.config import resolve_settings

    name = resolve_settings(toml, sets, model=model).train.model
    check_launch(nproc, registry().get("model", name).cls, resuming=resuming)
    if nproc == 1:
        return  # one process: this one
    raise typer.Exit(launch(nproc, relaunch_argv()))


def _refuse_with_resume(**given: object) -> None:
    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if named:
        raise DiffrecError(f"--resume continues a run with its own settings; leave out {', '.join(named)}")


def _reporter(quiet: bool, live: bool):
    from diffrec_cli.cli.progress import RichReporter
    from diffrec_cli.training.events import silent

    return silent if quiet else RichReporter(console, live=live)


def _print_outcome(outcome, samples: int, quiet: bool) -> None:
    from diffrec_cli.render.metrics import metrics_table

    result, config = outcome.result, outcome.config
    if outcome.run is None:  # a rank other than 0: it wrote nothing and has nothing to say
        return
    if not result.valid:
        console.print("stopped before the first evaluation: no metrics yet")
        console.print(f"run directory: {outcome.run.path}")
        return
    console.print(metrics_table(result.valid, result.test, config.ks,
                                title=f"{config.model} on {config.dataset}: best epoch {result.best_epoch}"))
    if samples > 0 and not quiet:
        from diffrec_cli.cli.serve import recommendations_table
        from diffrec_cli.serve import recommend_for_users

        data = outcome.data
        users = [data.user_ids[i] for i in range(min(samples, data.n_users))]
        frame = recommend_for_users(outcome.model, data, users, k=10, inputs=outcome.inputs)
        console.print(recommendations_table(frame, title="sample recommendations (top 10, seen items excluded)"))
    console.print(f"run directory: {outcome.run.path}")
