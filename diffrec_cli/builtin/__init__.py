"""The built-in components, registered through the same hooks any third-party plugin uses.

Each is registered by import path, so loading the plugins (every command does) imports no model code and
no torch; a class is imported when a command first builds or inspects it.
"""

from diffrec_cli.hookspecs import hookimpl


@hookimpl
def register_models(register):
    register("diffrec", "diffrec_cli.models.diffrec:DiffRec")
    register("tdiffrec", "diffrec_cli.models.temporal:TDiffRec")
    register("ldiffrec", "diffrec_cli.models.ldiffrec:LDiffRec")
    register("ltdiffrec", "diffrec_cli.models.temporal:LTDiffRec")


@hookimpl
def register_noise_schedules(register):
    register("linear-var", "diffrec_cli.diffusion.schedules:LinearVarianceSchedule")
    register("linear", "diffrec_cli.diffusion.schedules:LinearSchedule")
    register("binomial", "diffrec_cli.diffusion.schedules:BinomialSchedule")


@hookimpl
def register_reweightings(register):
    register("none", "diffrec_cli.data.reweighting:NoReweighting")
    register("time-linear", "diffrec_cli.data.reweighting:TimeLinearReweighting")
