"""qdsbench: reproduce and extend a family of attention papers with Hydra + Lightning."""

from qdsbench._env import configure_environment

configure_environment()

__version__ = "0.1.0"
