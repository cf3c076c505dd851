"""The ranking stages: hybrids, candidate sources, features, the learned ranker, business
rules, re-rankers and explanations, over the catalog a pipeline runs against.

Importing this package registers its scorers (``weighted``, ``switching``, ``cascade``,
``ranked``, ``stacked``) with :class:`tailored.models.Recommender`, so ``create``,
recipes, the CLI and tuning find them by name; ``tailored`` imports it, so a saved
artifact always loads.
"""

from .candidates import CandidateGenerator, CandidateSet, CandidateSource
from .catalog import ItemTable
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
from .rerankers import ONLINE_RERANKERS, RerankerStage, rerank
from .rules import RuleSet, UserFacts, UserFactsTable

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
    "ItemTable",
    "LearnedRanker",
    "LearnedRankerConfig",
    "LinUCB",
    "LinUCBConfig",
    "ModelSimilarity",
    "Part",
    "PreprocessingConfig",
    "Preprocessor",
    "Reason",
    "RerankerStage",
    "RuleSet",
    "StackedRanker",
    "StackedRankerConfig",
    "SwitchingHybrid",
    "SwitchingHybridConfig",
    "UserFacts",
    "UserFactsTable",
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
    "rerank",
    "reusing_fitted_parts",
    "similarity_for",
    "titles_of",
]
