"""Recommendations from the live store: the active model scores each user's history as it
is right now, so an event acknowledged a moment ago already counts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tailored.dataset import UserQuery
from tailored.errors import ModelNotFoundError
from tailored.models import Recommender
from tailored.store import ModelVersion, Store


class LiveRecommender:
    """One model version bound to the store it serves from."""

    def __init__(self, store: Store, model: Recommender, version: ModelVersion | None = None):
        self.store = store
        self.model = model
        self.version = version

    @classmethod
    def active(cls, store: Store) -> LiveRecommender:
        """The version the registry marks active."""
        version = store.models.active()
        if version is None:
            raise ModelNotFoundError(
                f"no active model in the store at {store.url}; train one with `tailored train`")
        return cls(store, Recommender.load(Path(version.path)), version)

    def query(self, user_ids: Sequence[str]) -> UserQuery:
        """The users with their histories as stored now."""
        events = self.store.events.frame(user_ids=list(user_ids))
        return UserQuery(tuple(user_ids), events)

    def recommend(self, user_ids: Sequence[str], k: int = 10, *,
                  exclude: Sequence[str] = ()) -> pd.DataFrame:
        """Top ``k`` per user from current histories, never an unavailable item."""
        # Read per request: a catalog change applies to the very next answer.
        excluded = [*self.store.items.unavailable(), *exclude]
        return self.model.recommend(self.query(user_ids), k=k, exclude=excluded)

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        unavailable = self.store.items.unavailable()
        similar = self.model.similar_items(item_id, k=k + len(unavailable))
        similar = similar[~similar["similar_item_id"].isin(unavailable)].head(k)
        similar["rank"] = range(1, len(similar) + 1)
        return similar.reset_index(drop=True)
