"""Recommenders: one module per family, each a typed config plus a ``Recommender``."""

from tailored.models.als import ALS, ALSConfig
from tailored.models.base import ModelConfig, Recommender, ScoringBatch
from tailored.models.knn import ItemKNN, ItemKNNConfig, UserKNN, UserKNNConfig
from tailored.models.popular import Popular, PopularConfig, Trending, TrendingConfig

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (Popular, Trending, ItemKNN, UserKNN, ALS)}


def create(name: str, **params: object) -> Recommender:
    """A model by its registered name (``popular``, ``item_knn``, ``als``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**params)


__all__ = ["ALS", "MODELS", "ALSConfig", "ItemKNN", "ItemKNNConfig", "ModelConfig", "Popular",
           "PopularConfig", "Recommender", "ScoringBatch", "Trending", "TrendingConfig", "UserKNN", "UserKNNConfig", "create"]
