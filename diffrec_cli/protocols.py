"""What a noise schedule and a reweighting strategy must offer, declared for plugin authors and type checkers.

Models declare theirs on ``models.base.Recommender``. Like a model, a component's constructor keyword
arguments are its whole configuration: the registry builds it from settings by name, checkpoints record
those arguments, and rebuilding from them gives the same component. Nothing here imports torch, so plugins
can be registered without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class NoiseSchedule(Protocol):
    """β₁..β_T of a forward diffusion process (registered with ``register_noise_schedules``)."""

    name: ClassVar[str]

    def betas(self) -> "np.ndarray":
        """float array of shape (T,), values in (0, 1], deterministic in the constructor arguments;
        index 0 is the paper's step t = 1."""
        ...


@runtime_checkable
class Reweighting(Protocol):
    """Values of the training matrix in place of 1s (registered with ``register_reweightings``)."""

    name: ClassVar[str]

    def weights(self, position: "np.ndarray", length: "np.ndarray") -> "np.ndarray":
        """float32 weights in (0, 1] for interactions at 0-based chronological ``position`` among their
        user's ``length`` training interactions; element-wise, so the order of entries does not matter."""
        ...
