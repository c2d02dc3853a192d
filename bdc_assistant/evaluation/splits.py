"""The fixed validation split (``assets/data/splits.json``): problem ids chosen once, by hash, never trained on.

``mbpp-val`` / ``codecontests-val`` are the ids there; ``mbpp-train`` / ``codecontests-train`` the rest.
Every choice the project makes (prompt mode, K, steps, learning rate, which hypernetwork ships) is made on the
validation sets; HumanEval is a test set, reported once and never used to choose.
"""

from __future__ import annotations

import json
from functools import cache

from ..errors import DatasetError
from ..resources import asset
from ..types import Problem

SPLIT_NAMES = ("val", "train")


@cache
def validation_ids(dataset: str) -> frozenset[str]:
    data = json.loads(asset("data", "splits.json").read_text(encoding="utf-8"))
    if dataset not in data:
        raise DatasetError(f"There is no validation split for '{dataset}' (known: mbpp, codecontests).")
    return frozenset(str(i) for i in data[dataset])


def is_validation_id(problem_id: str) -> bool:
    """Whether a problem id (trajectory ids may carry a ``codecontests/`` prefix) is in any validation split:
    such a problem must never become training data."""
    pid = problem_id.removeprefix("codecontests/")
    return pid in validation_ids("mbpp") or pid in validation_ids("codecontests")


def select(problems: list[Problem], dataset: str, split: str) -> list[Problem]:
    """The problems of ``dataset`` in ``split`` ('val' or 'train'), in their original order."""
    if split not in SPLIT_NAMES:
        raise DatasetError(f"Unknown split '{split}'; use one of {', '.join(SPLIT_NAMES)}.")
    ids = validation_ids(dataset)
    keep = [p for p in problems if (p.id in ids) == (split == "val")]
    if split == "val" and len(keep) != len(ids):
        missing = sorted(ids - {p.id for p in problems})[:3]
        raise DatasetError(f"The {dataset} problem set lacks validation ids such as {', '.join(missing)}.")
    return keep
