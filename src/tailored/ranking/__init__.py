"""The ranking stage: hybrids, candidate generation, features and the learned ranker.

Importing this package registers its models (``weighted``, ``switching``, ``cascade``,
...) in :data:`tailored.models.MODELS`, so ``create``, recipes, the CLI and tuning
find them by name; ``tailored`` imports it, so a saved artifact always loads.
"""

from tailored.models import MODELS

from .candidates import CandidateGenerator, CandidateSet, CandidateSource
from .diversity import (
    CategorySimilarity,
    ItemSimilarity,
    ModelSimilarity,
    categories_of,
    diversify,
    item_popularity,
    similarity_for,
)
from .explain import Reason, explain_recommendations, titles_of
from .exploration import LinUCB, LinUCBConfig, explore
from .features import (
    FeatureBuilder,
    FeatureConfig,
    PreprocessingConfig,
    Preprocessor,
    event_context,
    query_context,
)
from .hybrids import (
    CascadeHybrid,
    CascadeHybridConfig,
    CascadeStage,
    SwitchingHybrid,
    SwitchingHybridConfig,
    WeightedHybrid,
    WeightedHybridConfig,
    WeightedPart,
)
from .parts import Part, normalise_rows, reusing_fitted_parts
from .ranker import (
    LearnedRanker,
    LearnedRankerConfig,
    StackedRanker,
    StackedRankerConfig,
    default_sources,
)
from .reranked import ONLINE_RERANKERS, Reranked, RerankedConfig, RerankerStage

for _model in (WeightedHybrid, SwitchingHybrid, CascadeHybrid, LearnedRanker, StackedRanker,
               Reranked):
    MODELS.setdefault(_model.name, _model)

__all__ = [
    "ONLINE_RERANKERS",
    "CandidateGenerator",
    "CandidateSet",
    "CandidateSource",
    "CascadeHybrid",
    "CascadeHybridConfig",
    "CascadeStage",
    "CategorySimilarity",
    "FeatureBuilder",
    "FeatureConfig",
    "ItemSimilarity",
    "LearnedRanker",
    "LearnedRankerConfig",
    "LinUCB",
    "LinUCBConfig",
    "ModelSimilarity",
    "Part",
    "PreprocessingConfig",
    "Preprocessor",
    "Reason",
    "Reranked",
    "RerankedConfig",
    "RerankerStage",
    "StackedRanker",
    "StackedRankerConfig",
    "SwitchingHybrid",
    "SwitchingHybridConfig",
    "WeightedHybrid",
    "WeightedHybridConfig",
    "WeightedPart",
    "categories_of",
    "default_sources",
    "diversify",
    "event_context",
    "explain_recommendations",
    "explore",
    "item_popularity",
    "normalise_rows",
    "query_context",
    "reusing_fitted_parts",
    "similarity_for",
    "titles_of",
]
