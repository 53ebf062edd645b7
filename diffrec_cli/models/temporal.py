"""T-DiffRec and LT-DiffRec (paper §3.6): DiffRec and L-DiffRec fed time-aware reweighted interactions.

The temporal part is not in the model: it is the ``time-linear`` reweighting strategy (Eq. 16), which puts
w_m = w_min + (m − 1)/(M − 1)·(w_max − w_min) into the training matrix in place of the 1s, so the model's
input and its reconstruction target are both reweighted, in training and at inference. These two names are
thin subclasses whose only difference is that default: ``--model tdiffrec`` is ``--model diffrec --set
reweighting=time-linear`` (``w_min``/``w_max`` settings go to the reweighting), and ``--set reweighting=...``
still chooses another strategy (``none`` gives plain DiffRec under this name).
"""

from __future__ import annotations

from diffrec_cli.models.diffrec import DiffRec
from diffrec_cli.models.ldiffrec import LDiffRec


class TDiffRec(DiffRec):
    """T-DiffRec: DiffRec trained and served on time-linear reweighted interactions (the default here)."""

    name = "tdiffrec"
    default_reweighting = "time-linear"


class LTDiffRec(LDiffRec):
    """LT-DiffRec: L-DiffRec trained and served on time-linear reweighted interactions (the default here)."""

    name = "ltdiffrec"
    default_reweighting = "time-linear"
