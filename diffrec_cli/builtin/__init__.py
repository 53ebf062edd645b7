"""The built-in components, registered through the same hooks any third-party plugin uses."""

from diffrec_cli.hookspecs import hookimpl


@hookimpl
def register_models(register):
    from diffrec_cli.models.diffrec import DiffRec
    from diffrec_cli.models.ldiffrec import LDiffRec
    from diffrec_cli.models.temporal import LTDiffRec, TDiffRec

    register(DiffRec, name="diffrec")
    register(TDiffRec, name="tdiffrec")
    register(LDiffRec, name="ldiffrec")
    register(LTDiffRec, name="ltdiffrec")


@hookimpl
def register_noise_schedules(register):
    from diffrec_cli.diffusion.schedules import BinomialSchedule, LinearSchedule, LinearVarianceSchedule

    register(LinearVarianceSchedule, name="linear-var")
    register(LinearSchedule, name="linear")
    register(BinomialSchedule, name="binomial")


@hookimpl
def register_reweightings(register):
    from diffrec_cli.data.reweighting import NoReweighting, TimeLinearReweighting

    register(NoReweighting, name="none")
    register(TimeLinearReweighting, name="time-linear")
