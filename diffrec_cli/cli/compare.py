"""``diffrec compare``: paired significance tests between trained runs, user by user."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from diffrec_cli.cli.common import HomeOption, console, handles_errors


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


@handles_errors
def compare_command(
    runs: list[str] = typer.Argument(..., help="Two or more run ids (or prefixes), run directories or checkpoints."),
    metric: str = typer.Option("recall@20", "--metric", help="Per-user metric: recall, ndcg, precision, mrr or "
                                                             "hit at a cutoff, e.g. ndcg@10."),
    split: str = typer.Option("test", "--split", help="valid or test."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = typer.Option("cpu", "--device", help="Where to score the users: cpu, cuda or cuda:N."),
    home: HomeOption = None,
) -> None:
    """Compare runs on the same dataset user by user: paired t-test and Wilcoxon signed-rank test for every
    pair, Holm-corrected over the pairs, with Cohen's d_z and a 95 % CI of the mean difference (B − A)."""
    from diffrec_cli.cli.common import registry
    from diffrec_cli.comparison import compare_runs
    from diffrec_cli.data.store import DataHome

    result = compare_runs(list(runs), registry(), DataHome(home), metric=metric, split=split, device=device)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    users = len(result.runs[0].users)
    models = Table("#", "run", "model", f"mean {metric}", title=f"{result.dataset}, {split}: {users:,} users")
    number = {}
    for i, run in enumerate(result.runs, 1):
        number[run.run] = f"#{i}"
        models.add_row(f"#{i}", run.run, run.model, f"{run.values.mean():.4f}")
    console.print(models)
    pairs = Table("A", "B", "B − A", "95% CI of B − A", "d_z", "t-test p", "Wilcoxon p",
                  title="paired over users; p-values Holm-corrected over all pairs")
    for p in result.pairs:
        pairs.add_row(number[p.a], number[p.b], f"{p.mean_diff:+.4f}", f"{p.ci_low:+.4f} … {p.ci_high:+.4f}",
                      f"{p.effect_size:+.3f}", _p(p.t_p_holm), _p(p.wilcoxon_p_holm))
    console.print(pairs)
