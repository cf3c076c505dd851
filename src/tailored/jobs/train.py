"""The training job: snapshot the store, validate on a temporal split, fit, save, register."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tailored.dataset import Dataset, temporal_split
from tailored.evaluation import evaluate_model
from tailored.pipeline import Pipeline, Recipe
from tailored.settings import Settings
from tailored.store import ModelVersion, Store

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
    data = Dataset.from_store(store, settings.event_weights)
    metrics: dict[str, float] = {}
    if validate and data.events["timestamp"].notna().all():
        step("validating on a temporal split")
        split = temporal_split(data)
        if split.test_users:  # too little data leaves no one to test on: record nothing
            metrics = evaluate_model(recipe.build(), split).metrics
    step(f"fitting {name} on {len(data):,} events")
    pipeline = recipe.build().fit(data)
    version = register_model(store, settings, recipe, pipeline, data, metrics, promote=promote)
    return TrainedModel(version, pipeline, metrics)


def register_model(store: Store, settings: Settings, recipe: Recipe, pipeline: Pipeline,
                   data: Dataset, metrics: Mapping[str, float], *, promote: bool,
                   details: Mapping[str, Any] | None = None) -> ModelVersion:
    """Save ``pipeline`` (fitted on ``data`` by ``recipe``) under the model directory and
    register it, under the recipe's name, with its metrics and what it learned from;
    ``promote`` makes it serve."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = (settings.model_dir / f"{recipe.name}-{stamp}").resolve()
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
    return store.models.promote(version.version) if promote else version
