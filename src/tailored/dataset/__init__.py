"""Snapshots for learning: vocabularies, the user-item matrix, feature tables, splits."""

from tailored.dataset.interactions import (
    Dataset,
    event_weights,
    interaction_matrix,
    interest_mask,
    profile_table,
)
from tailored.dataset.query import UserQuery
from tailored.dataset.splits import (
    MULTI_SPLITS,
    SPLITS,
    Split,
    leave_last_out_split,
    random_holdout_split,
    split_by_name,
    splits_by_name,
    temporal_split,
    time_series_splits,
    user_kfold_splits,
    user_temporal_ratio_split,
    validation_split,
)
from tailored.dataset.vocabulary import Vocabulary

__all__ = [
    "MULTI_SPLITS",
    "SPLITS",
    "Dataset",
    "Split",
    "UserQuery",
    "Vocabulary",
    "event_weights",
    "interaction_matrix",
    "interest_mask",
    "leave_last_out_split",
    "profile_table",
    "random_holdout_split",
    "split_by_name",
    "splits_by_name",
    "temporal_split",
    "time_series_splits",
    "user_kfold_splits",
    "user_temporal_ratio_split",
    "validation_split",
]
