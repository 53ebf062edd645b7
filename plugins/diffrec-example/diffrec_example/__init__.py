"""diffrec-example: a worked example of a diffrec plugin.

diffrec loads this module through the ``diffrec`` entry-point group (see pyproject.toml) and calls the
hook implementations below with a ``register`` callback. Imports of the components happen inside the
hooks, so listing plugins stays cheap.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_noise_schedules(register):
    from diffrec_example.schedules import CosineSchedule

    register(CosineSchedule, name="cosine")


@hookimpl
def register_reweightings(register):
    from diffrec_example.reweighting import ExpDecayReweighting

    register(ExpDecayReweighting, name="exp-decay")
