"""``diffrec export-embeddings``: a run's item embeddings as a .npy file (for L-DiffRec's clustering)."""

from __future__ import annotations

from pathlib import Path

import typer

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, handles_errors


@handles_errors
def export_embeddings_command(
    run: str = typer.Argument(..., autocompletion=complete.runs, help="Run id (or prefix), run directory, or checkpoint path of an MF or LightGCN run."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npy file: float32 (n_items, d) in the dataset's item order."),
    home: HomeOption = None,
) -> None:
    """Write a run's item embeddings (MF: the item factors; LightGCN: the propagated item embeddings)."""
    from diffrec_cli.cli.common import registry
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.embeddings import export_item_embeddings

    emb = export_item_embeddings(run, out, registry(), home=DataHome(home))
    console.print(f"wrote item embeddings {emb.shape[0]:,} x {emb.shape[1]} (float32) to {out}")
