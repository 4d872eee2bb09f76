"""qdsbench: reproduce and extend a family of attention papers with Hydra + Lightning."""

from qdsbench._env import configure_environment
from qdsbench.console import silence_known_warnings

configure_environment()
silence_known_warnings()  # process-wide, before lightning is imported (qdsbench/console.py says which and why)

__version__ = "0.1.0"
