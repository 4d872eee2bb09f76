"""What a model may know of its data before training: shapes, sizes and statistics of the training rows.

Data flows one way: the datamodule is the only reader of a dataset, ``datamodule.model_inputs()`` returns a
``ModelInputs``, and the builder hands it to the model factories that declare with ``@needs(...)`` which fields they
read. A model never opens a file, so what it was built from is what the datamodule trains and tests on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from qdsbench.errors import UserError

# (q_rows rule, cache dir) -> (Q_in, Q_out): the OrthoTrans matrices for the lookback and the horizon.
OrthoTrans = Callable[[str, "str | Path"], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ModelInputs:
    """None = this data has no such thing. Field names are the data config's keys, so configs can interpolate them."""

    seq_len: int | None = None  # forecasting lookback, or tokens per sequence
    pred_len: int | None = None  # forecasting horizon
    num_variates: int | None = None  # forecasting: series per row (the file's data columns)
    image_size: int | None = None
    in_chans: int | None = None
    num_classes: int | None = None
    vocab_size: int | None = None
    orthotrans: OrthoTrans | None = None  # OLinear's Q, computed by the datamodule from its own rows

    def provided(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}

    def check(self, model: str, needed: Iterable[str], data: str) -> None:
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise UserError(
                f"model '{model}' needs {', '.join(missing)} from its data, which data '{data}' does not have; "
                f"pick data that provides {', '.join(needed)}"
            )


def needs(*names: str) -> Callable[[Any], Any]:
    """Mark a model factory as taking ``inputs: ModelInputs`` and name the fields it reads (checked before the call)."""
    known = {f.name for f in fields(ModelInputs)}
    unknown = set(names) - known
    if unknown:
        raise ValueError(f"unknown ModelInputs fields {sorted(unknown)}; valid: {', '.join(sorted(known))}")

    def mark(factory: Any) -> Any:
        factory.needs = tuple(names)
        return factory

    return mark
