"""Snapshots for learning: vocabularies, the user-item matrix, feature tables, splits."""

from tailored.dataset.interactions import Dataset, event_weights, interaction_matrix
from tailored.dataset.query import UserQuery
from tailored.dataset.splits import Split, temporal_split
from tailored.dataset.vocabulary import Vocabulary

__all__ = ["Dataset", "Split", "UserQuery", "Vocabulary", "event_weights", "interaction_matrix",
           "temporal_split"]
