"""``diffrec plot …``: figures of runs and searches as PNG, SVG or PDF files (needs the plot extra)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from diffrec_cli.cli.common import HomeOption, console, handles_errors

app = typer.Typer(help="Figures as PNG, SVG or PDF files: metric curves, losses per diffusion step, run "
                       "comparisons and sweeps of a search (needs matplotlib: pip install 'diffrec[plot]').",
                  no_args_is_help=True)

OutOption = typer.Option(..., "--out", "-o", metavar="FILE", help="Figure file; .png, .svg or .pdf picks the format.")
MetricOption = typer.Option(None, "--metric", metavar="NAME", help="Metric to draw, e.g. ndcg@10; repeatable.")


def _records(runs: list[str], home: Optional[str]):
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.runs import read_run, resolve_run

    runs_dir = DataHome(home).runs_dir
    return [read_run(resolve_run(runs_dir, run)) for run in runs]


def _saved(figure, out: Path) -> None:
    from diffrec_cli.figures import save

    console.print(f"wrote {save(figure, out)}", highlight=False)


@app.command("curves")
@handles_errors
def curves(runs: List[str] = typer.Argument(..., metavar="RUN...", help="Runs (ids, unique id prefixes or paths)."),
           out: Path = OutOption, metrics: Optional[List[str]] = MetricOption,
           split: str = typer.Option("valid", "--split", help="valid or test."), home: HomeOption = None) -> None:
    """A metric over the epochs of one or several runs, one line per run \\[default metric: recall@20]."""
    from diffrec_cli.figures import curves as draw

    _saved(draw(_records(runs, home), metrics or ["recall@20"], _split(split)), out)


@app.command("losses")
@handles_errors
def losses(runs: List[str] = typer.Argument(..., metavar="RUN...", help="Runs (ids, unique id prefixes or paths)."),
           out: Path = OutOption, home: HomeOption = None) -> None:
    """The mean loss per diffusion step t of one or several runs (the importance-sampling history)."""
    from diffrec_cli.figures import step_losses

    _saved(step_losses(_records(runs, home)), out)


@app.command("compare")
@handles_errors
def compare(runs: List[str] = typer.Argument(..., metavar="RUN...", help="Runs (ids, unique id prefixes or paths)."),
            out: Path = OutOption, metrics: Optional[List[str]] = MetricOption,
            split: str = typer.Option("test", "--split", help="valid or test."), home: HomeOption = None) -> None:
    """Bars of the runs' metrics at their best epoch \\[default metrics: recall@20, ndcg@20]."""
    from diffrec_cli.figures import compare as draw

    _saved(draw(_records(runs, home), metrics or ["recall@20", "ndcg@20"], _split(split)), out)


@app.command("sweep")
@handles_errors
def sweep(search: str = typer.Argument(..., metavar="TUNE", help="A search: its id (or prefix), folder or tune.json."),
          x: str = typer.Option(..., "--x", metavar="SETTING", help="The swept setting along the x axis."),
          lines: Optional[str] = typer.Option(None, "--lines", metavar="SETTING",
                                              help="Another swept setting: one line per value."),
          out: Path = OutOption, metrics: Optional[List[str]] = MetricOption,
          split: str = typer.Option("test", "--split", help="valid or test."), home: HomeOption = None) -> None:
    """A metric against a setting swept by 'diffrec tune', one panel per metric \\[default: recall@20, ndcg@20]."""
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.figures import sweep as draw
    from diffrec_cli.tuning import read_tune

    result = read_tune(DataHome(home), search)
    _saved(draw(result, x, lines, metrics or ["recall@20", "ndcg@20"], _split(split)), out)


def _split(split: str) -> str:
    from diffrec_cli.errors import DiffrecError

    if split not in ("valid", "test"):
        raise DiffrecError(f"split must be valid or test, got {split!r}")
    return split
