"""diffrec-successors: diffusion recommenders published after DiffRec, as a diffrec plugin.

GiffCF (Zhu et al., SIGIR 2024), BSPM (Choi et al., SIGIR 2023) and CF-Diff (Hou et al., SIGIR 2024),
registered through the ``register_models`` hook like any third-party plugin. Model modules are imported
inside the hook so that loading plugins stays cheap.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_models(register):
    from diffrec_successors.bspm import BSPM
    from diffrec_successors.cfdiff import CFDiff
    from diffrec_successors.giffcf import GiffCF

    for cls in (GiffCF, BSPM, CFDiff):
        register(cls, name=cls.name)
