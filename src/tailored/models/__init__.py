"""Recommenders: one module per family, each a typed config plus a ``Recommender``.

``MODELS`` maps each registered name (used by the CLI's ``--model`` and by pipeline
recipes) to its class; ``create(name, **params)`` builds one. The models made of models
(hybrids ``weighted``/``switching``/``cascade``, the learned rankers ``ranked``/``stacked``
and ``reranked``) live above this layer in :mod:`tailored.ranking`, which adds them to
``MODELS`` when imported (``import tailored`` does).
"""

from typing import Any

from tailored.models.als import ALS, ALSConfig
from tailored.models.base import ModelConfig, Reason, Recommender, ScoringBatch
from tailored.models.bpr import BPR, BPRConfig
from tailored.models.content import ContentBased, ContentBasedConfig
from tailored.models.ease import EASE, EASEConfig
from tailored.models.item2vec import Item2Vec, Item2VecConfig
from tailored.models.knn import ItemKNN, ItemKNNConfig, UserKNN, UserKNNConfig
from tailored.models.popular import Popular, PopularConfig, Trending, TrendingConfig
from tailored.models.rules import RuleBased, RuleBasedConfig, RuleSet
from tailored.models.segments import Segments, SegmentsConfig
from tailored.models.sequential import SASRec, SASRecConfig

MODELS: dict[str, type[Recommender]] = {
    model.name: model
    for model in (Popular, Trending, ItemKNN, UserKNN, ALS, BPR, EASE, ContentBased,
                  Item2Vec, SASRec, Segments, RuleBased)
}


def create(name: str, **params: Any) -> Recommender:
    """A model by its registered name (see ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**params)


__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "MODELS",
    "ALSConfig",
    "BPRConfig",
    "ContentBased",
    "ContentBasedConfig",
    "EASEConfig",
    "Item2Vec",
    "Item2VecConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "ModelConfig",
    "Popular",
    "PopularConfig",
    "Reason",
    "Recommender",
    "RuleBased",
    "RuleBasedConfig",
    "RuleSet",
    "SASRec",
    "SASRecConfig",
    "ScoringBatch",
    "Segments",
    "SegmentsConfig",
    "Trending",
    "TrendingConfig",
    "UserKNN",
    "UserKNNConfig",
    "create",
]
