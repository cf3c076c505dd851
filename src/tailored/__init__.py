"""tailored: a self-hosted personalization engine.

>>> import pandas as pd
>>> import tailored
>>> events = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"]})
>>> data = tailored.Dataset.from_frame(events)
>>> model = tailored.models.ItemKNN().fit(data)
>>> model.recommend(["u2"], k=10)["item_id"].tolist()
['b']
"""

from typing import Any

from tailored import models, ranking  # ranking registers hybrids and rankers
from tailored.dataset import Dataset, UserQuery
from tailored.models.artifact import package_version

__version__ = package_version()
__all__ = ["Dataset", "UserQuery", "__version__", "models", "ranking", "tune"]


def __getattr__(name: str) -> Any:
    # ``tailored.tune`` without loading Optuna on every ``import tailored``.
    if name == "tune":
        from tailored.evaluation.tuning import tune

        return tune
    raise AttributeError(f"module 'tailored' has no attribute {name!r}")
