"""Snapshots for learning: vocabularies, the user-item matrix, feature tables, splits."""

from tailored.dataset.interactions import Dataset, event_weights, interaction_matrix
from tailored.dataset.query import UserQuery
from tailored.dataset.splits import (
    SPLITS,
    Split,
    leave_last_out_split,
    split_by_name,
    temporal_split,
)
from tailored.dataset.vocabulary import Vocabulary

__all__ = [
    "SPLITS",
    "Dataset",
    "Split",
    "UserQuery",
    "Vocabulary",
    "event_weights",
    "interaction_matrix",
    "leave_last_out_split",
    "split_by_name",
    "temporal_split",
]
