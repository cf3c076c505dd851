"""The training job: snapshot the store, validate on a temporal split, fit, save, register."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from tailored.dataset import Dataset, temporal_split
from tailored.evaluation import evaluate_model
from tailored.jobs.erase import audit_key
from tailored.jobs.webhooks import model_promoted
from tailored.models import Forgetting
from tailored.pipeline import Pipeline, Recipe, forget_in_artifact
from tailored.settings import Settings
from tailored.store import ModelVersion, Store, keyed_hash

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainedModel:
    version: ModelVersion
    pipeline: Pipeline
    metrics: dict[str, float]


def train_model(store: Store, settings: Settings, recipe: str | Recipe,
                params: Mapping[str, Any] | None = None, *, validate: bool = True,
                promote: bool = True, progress: Progress | None = None) -> TrainedModel:
    """Train a recipe's pipeline (or the model family named, with ``params``) on
    everything in the store and register it under the recipe's name.

    With ``validate``, the pipeline is first fitted on the temporal split's training part
    and its metrics on the test part are stored with the version. The served pipeline is
    then fitted on all events. ``promote`` makes it the active version.
    """
    if isinstance(recipe, str):
        recipe = Recipe.of(recipe, **(params or {}))
    elif params:
        raise TypeError("params go inside the recipe")
    name = recipe.name
    step = progress or (lambda _message: None)
    step("reading the store")
    read_at, seen = datetime.now(UTC), store.privacy.last_erasure_id()
    data = Dataset.from_store(store, settings.event_weights)
    metrics: dict[str, float] = {}
    if validate and data.events["timestamp"].notna().all():
        step("validating on a temporal split")
        split = temporal_split(data)
        if split.test_users:  # too little data leaves no one to test on: record nothing
            metrics = evaluate_model(recipe.build(), split).metrics
    step(f"fitting {name} on {len(data):,} events")
    pipeline = recipe.build().fit(data)
    version = register_model(store, settings, recipe, pipeline, data, metrics, promote=promote,
                             erasures_seen=seen)
    if promote:  # erasures before the read wait for no retraining any more
        store.privacy.mark_retrained(read_at)
    return TrainedModel(version, pipeline, metrics)


def register_model(store: Store, settings: Settings, recipe: Recipe, pipeline: Pipeline,
                   data: Dataset, metrics: Mapping[str, float], *, promote: bool,
                   details: Mapping[str, Any] | None = None,
                   erasures_seen: int | None = None) -> ModelVersion:
    """Save ``pipeline`` (fitted on ``data`` by ``recipe``) under the model directory and
    register it, under the recipe's name, with its metrics and what it learned from;
    ``promote`` makes it serve.

    ``erasures_seen``: the newest erasure when ``data`` was read. Users erased since
    then are in the pipeline but no longer in the store, and an erasure rewrites only
    the versions registered when it runs: they are forgotten here, before saving, and
    once more in the saved artifact for any erased while it was being registered.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = (settings.model_dir / f"{recipe.name}-{stamp}").resolve()
    if erasures_seen is not None:
        checked = store.privacy.last_erasure_id()
        _forget_erased(store, settings, pipeline, erasures_seen, pipeline.forget_users)
    pipeline.save(path)
    last_event = data.events["timestamp"].max() if len(data) else None
    recorded = {"recipe": recipe.model_dump(mode="json"),
                "config": pipeline.scorer.config.model_dump(mode="json"),
                "data_digest": data.digest,
                "events": len(data), "users": data.n_users, "items": data.n_items,
                # Drift detectors compare live traffic with what the model learned from.
                "trained_until": None if pd.isna(last_event) else str(last_event),
                **(details or {})}
    version = store.models.register(recipe.name, str(path), dict(metrics), recorded)
    if erasures_seen is not None:
        _forget_erased(store, settings, pipeline, checked,
                       lambda users: forget_in_artifact(path, users))
    if not promote:
        return version
    previous = store.models.active()
    promoted = store.models.promote(version.version)
    model_promoted(store, promoted, None if previous is None else previous.version)
    return promoted


def _forget_erased(store: Store, settings: Settings, pipeline: Pipeline, seen: int,
                   forget: Callable[[list[str]], Forgetting]) -> None:
    """Forget the users ``pipeline`` knows who were erased after the erasure ``seen``
    (found by the audit's keyed hashes: the audit keeps no ids); where the model keeps
    their influence at item level, their erasures wait for a retraining."""
    erasures = {erasure.user_hash: erasure.erasure_id
                for erasure in store.privacy.erasures(after=seen)}
    if not erasures:
        return
    key = audit_key(store, settings)
    found = {user: erasures[hashed] for user in pipeline.user_ids
             if (hashed := keyed_hash(key, user)) in erasures}
    forgetting = forget(list(found))
    if found and not forgetting.exact:
        store.privacy.mark_pending(found.values(),
                                   timedelta(hours=settings.erasure_retrain_hours))
