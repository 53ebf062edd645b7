"""One factorisation for the closed-form fits of a search that differ only in a model's ``refit_settings``.

``diffrec tune`` over EASE's ``reg`` would otherwise refactorise the same Gram matrix for every λ. A
``SharedFits`` lives as long as one search: the first trial of a group ``factorise``s and every trial fits
``fit_from`` those factors. A group is everything that shapes the factors: the model (name, plugin, its
settings except the refit ones, components, reweighting) and the dataset (name and fingerprint). Only the
newest group's factors are kept, so a search holds one set of factors at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from diffrec_cli.errors import DiffrecError
from diffrec_cli.memory import check_fits

if TYPE_CHECKING:  # importing a search must not load torch
    import scipy.sparse as sp

    from diffrec_cli.models.base import Recommender
    from diffrec_cli.models.spec import ModelSpec


def group_key(spec: "ModelSpec", refit_settings: tuple[str, ...], dataset: str, fingerprint: str) -> str:
    """What must be equal for two fits to share their factors."""
    raw = spec.to_json()
    raw["config"] = {k: v for k, v in raw.get("config", {}).items() if k not in refit_settings}
    raw.pop("version", None)
    return json.dumps({"model": raw, "dataset": dataset, "fingerprint": fingerprint}, sort_keys=True, default=str)


@dataclass
class SharedFits:
    """The factors of the latest group of a search, and its key."""

    key: str | None = None
    factors: Any = None
    factorisations: int = 0  # how many times factors were computed (tests and progress read it)

    def fitter(self, model: "Recommender", spec: "ModelSpec", dataset: str,
               fingerprint: str) -> Callable[["sp.csr_matrix"], None]:
        """The closed-form fit of ``model``: through shared factors when it declares ``refit_settings``."""
        if not model.refit_settings:
            return model.fit_closed_form
        key = group_key(spec, model.refit_settings, dataset, fingerprint)

        def fit(inputs: "sp.csr_matrix") -> None:
            if key != self.key:
                self.key, self.factors = None, None  # the old group's factors go before the new ones come
                try:
                    check_fits(model.fit_memory(inputs.nnz, factorised=True), "shared factors")
                except DiffrecError:  # the factors would not fit beside the model: fit this trial alone
                    model.fit_closed_form(inputs)
                    return
                self.factors = model.factorise(inputs)
                self.key, self.factorisations = key, self.factorisations + 1
            model.fit_from(self.factors)

        return fit


def worth_sharing(model_cls: Any, trials: list[Any]) -> list[bool]:
    """For each planned trial (its ``params``): whether its group, the trials whose settings differ only in
    the model's ``refit_settings``, is large enough for one shared factorisation to pay (``refit_break_even``)."""
    refit = set(model_cls.refit_settings)
    keys = [json.dumps({k: v for k, v in t.params.items() if k not in refit}, sort_keys=True, default=str)
            for t in trials]
    return [bool(refit) and keys.count(key) >= model_cls.refit_break_even for key in keys]
