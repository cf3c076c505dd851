"""Recommenders (a pipeline's scorer): one module per family, a typed config plus a
``Recommender``.

A family registers itself by subclassing :class:`Recommender` with a ``name``; ``MODELS``
is that one registry (name -> class), read by the CLI's ``--model``, recipes, tuning and
the contract suite; ``create(name, **params)`` builds one. The scorers made of scorers
(hybrids ``weighted``/``switching``/``cascade``, the learned rankers ``ranked``/``stacked``)
live above this layer in :mod:`tailored.ranking` and register when it is imported
(``import tailored`` does).
"""

from typing import Any

from tailored.models.als import ALS, ALSConfig
from tailored.models.base import (
    Forgetting,
    ModelConfig,
    Reason,
    Recommender,
    ScoringBatch,
    model_class,
)
from tailored.models.bpr import BPR, BPRConfig
from tailored.models.content import ContentBased, ContentBasedConfig
from tailored.models.ease import EASE, EASEConfig
from tailored.models.graph import LightGCN, LightGCNConfig
from tailored.models.item2vec import Item2Vec, Item2VecConfig
from tailored.models.knn import ItemKNN, ItemKNNConfig, UserKNN, UserKNNConfig
from tailored.models.popular import Popular, PopularConfig, Trending, TrendingConfig
from tailored.models.segments import Segments, SegmentsConfig
from tailored.models.sequential import SASRec, SASRecConfig
from tailored.models.transitions import ItemTransitions, ItemTransitionsConfig

#: The registry: every family that subclasses ``Recommender`` with a ``name``.
MODELS = Recommender._registry


def create(name: str, **params: Any) -> Recommender:
    """A model by its registered name (see ``MODELS``)."""
    return model_class(name)(**params)


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
    "Forgetting",
    "Item2Vec",
    "Item2VecConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "ItemTransitions",
    "ItemTransitionsConfig",
    "LightGCN",
    "LightGCNConfig",
    "ModelConfig",
    "Popular",
    "PopularConfig",
    "Reason",
    "Recommender",
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
    "model_class",
]
