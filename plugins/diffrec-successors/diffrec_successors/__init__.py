"""diffrec-successors: diffusion recommenders published after DiffRec, as a diffrec plugin.

GiffCF (Zhu et al., SIGIR 2024), BSPM (Choi et al., SIGIR 2023), CF-Diff (Hou et al., SIGIR 2024) and
DiffEASE (this project's heat diffusion with EASE's closed-form denoiser),
registered through the ``register_models`` hook like any third-party plugin, by name and import path, so
loading plugins stays cheap (no torch): diffrec imports a model's module when it builds one.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"

MODELS = {
    "giffcf": "diffrec_successors.giffcf:GiffCF",
    "bspm": "diffrec_successors.bspm:BSPM",
    "cfdiff": "diffrec_successors.cfdiff:CFDiff",
    "diffease": "diffrec_successors.diffease:DiffEASE",
}


@hookimpl
def register_models(register):
    for name, path in MODELS.items():
        register(name, path)
