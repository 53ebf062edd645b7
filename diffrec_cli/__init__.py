"""diffrec: diffusion recommender models (Wang et al., SIGIR 2023) as a library and a CLI."""

__version__ = "0.1.0"
