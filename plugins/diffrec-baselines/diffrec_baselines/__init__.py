"""diffrec-baselines: the DiffRec paper's baselines (§4.1.2) and two strong classics, as a diffrec plugin.

diffrec loads this module through the ``diffrec`` entry-point group and calls ``register_models`` with a
``register`` callback, exactly as it does for any third-party plugin. Each model is registered by name and
import path, so loading plugins stays cheap (no torch): diffrec imports a model's module when it builds one.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


MODELS = {
    "mf": "diffrec_baselines.graph:MF",
    "lightgcn": "diffrec_baselines.graph:LightGCN",
    "cdae": "diffrec_baselines.autoencoders:CDAE",
    "multidae": "diffrec_baselines.autoencoders:MultiDAE",
    "multidae++": "diffrec_baselines.autoencoders:MultiDAEPlusPlus",
    "multivae": "diffrec_baselines.autoencoders:MultiVAE",
    "codigem": "diffrec_baselines.autoencoders:CODIGEM",
    "ease": "diffrec_baselines.ease:EASE",
    "itemknn": "diffrec_baselines.neighbourhood:ItemKNN",
    "toppop": "diffrec_baselines.popularity:TopPop",
    "rp3beta": "diffrec_baselines.neighbourhood:RP3beta",
    "slim": "diffrec_baselines.slim:SLIM",
    "ials": "diffrec_baselines.ials:IALS",
}


@hookimpl
def register_models(register):
    for name, path in MODELS.items():
        register(name, path)
