"""diffrec-baselines: the DiffRec paper's baselines (§4.1.2) and two strong classics, as a diffrec plugin.

diffrec loads this module through the ``diffrec`` entry-point group and calls ``register_models`` with a
``register`` callback, exactly as it does for any third-party plugin. The model modules are imported inside
the hook so that loading plugins stays cheap.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_models(register):
    from diffrec_baselines.autoencoders import CDAE, CODIGEM, MultiDAE, MultiDAEPlusPlus, MultiVAE
    from diffrec_baselines.graph import LightGCN, MF
    from diffrec_baselines.ials import IALS
    from diffrec_baselines.neighbourhood import EASE, ItemKNN, RP3beta
    from diffrec_baselines.popularity import TopPop
    from diffrec_baselines.slim import SLIM

    for cls in (MF, LightGCN, CDAE, MultiDAE, MultiDAEPlusPlus, MultiVAE, CODIGEM, EASE, ItemKNN, TopPop, RP3beta,
                SLIM, IALS):
        register(cls, name=cls.name)
