"""The built-in components, registered through the same hooks any third-party plugin uses."""

from diffrec_cli.hookspecs import hookimpl


@hookimpl
def register_models(register):
    from diffrec_cli.models.diffrec import DiffRec

    register(DiffRec, name="diffrec")


@hookimpl
def register_noise_schedules(register):
    from diffrec_cli.diffusion.schedules import LinearSchedule, LinearVarianceSchedule

    register(LinearVarianceSchedule, name="linear-var")
    register(LinearSchedule, name="linear")


@hookimpl
def register_reweightings(register):
    from diffrec_cli.data.reweighting import NoReweighting

    register(NoReweighting, name="none")
