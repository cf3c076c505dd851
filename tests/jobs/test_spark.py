"""Training on Spark (`tailored train --engine spark`): Spark weighs events as the dataset
does, and a Spark-trained ALS registers, loads and serves like a single-node one.

Tests that start Spark are marked ``spark`` (``make spark``, part of ``make test``);
without Java they skip, saying so. The refusals and the missing-dependency errors run
in the default suite: they start nothing.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.dataset import Dataset
from tailored.jobs import train_model
from tailored.jobs.parquet import write_events
from tailored.jobs.spark import (
    SparkUnavailableError,
    check_spark,
    train_als_on_spark,
    train_model_on_spark,
    weighted_interactions,
)
from tailored.models import ALS
from tailored.pipeline import LiveRecommender, Pipeline, Recipe
from tailored.sample import shop
from tailored.schema import Event, EventWeights, User
from tailored.settings import Settings
from tailored.store import Store, open_store

PARAMS: dict[str, Any] = {"factors": 8, "iterations": 5, "alpha": 2.0}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local[2] session for the module (starting Spark takes seconds)."""
    try:
        check_spark()
    except SparkUnavailableError as error:
        warnings.warn(f"Spark tests skipped: {error}", stacklevel=1)
        pytest.skip(f"Spark tests need PySpark and Java: {error}")
    from tailored.jobs.spark import spark_session

    with spark_session("local[2]") as session:
        yield session


@pytest.fixture(scope="module")
def events() -> list[Event]:
    sample = shop(n_users=120, n_items=40, n_events=2_500, seed=5)
    return [Event(event_id=row.event_id, user_id=row.user_id, item_id=row.item_id,
                  event_type=row.event_type, timestamp=row.timestamp)
            for row in sample.events.itertuples(index=False)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}", model_dir=tmp_path / "m")


@pytest.fixture
def store(settings: Settings, events: list[Event]) -> Iterator[Store]:
    opened = open_store(settings.store_url)
    opened.events.add(events)
    yield opened
    opened.close()


def _mixed_events() -> pd.DataFrame:
    """Every weighting rule at once: types by weight, ratings by value (and without
    one), impressions, a zero rating, a type only ``default`` weighs, no type at all."""
    rows = [
        ("u1", "a", "view", None), ("u1", "a", "view", None), ("u1", "b", "purchase", None),
        ("u1", "c", "rating", 4.0), ("u2", "a", "click", None), ("u2", "b", "impression", None),
        ("u2", "c", "rating", None), ("u2", "d", "rating", 0.0), ("u3", "d", "add_to_cart", None),
        ("u3", "e", "legacy_type", None), ("u3", "a", None, None), ("u4", "e", "impression", None),
        ("u4", "b", "rating", 2.5), ("u4", "b", "view", None),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "value"])
    frame["timestamp"] = pd.date_range("2024-01-01", periods=len(frame), freq="h", tz="UTC")
    return frame


# ---- Spark at work --------------------------------------------------------------------


@pytest.mark.spark
def test_spark_weighs_events_as_the_dataset_does(spark: Any, tmp_path: Path) -> None:
    raw = _mixed_events()
    weights = EventWeights(custom={"wishlist": 3.0}, default=0.5, view=1.5)
    data = Dataset.from_frame(raw.assign(event_type=raw["event_type"].fillna("view")),
                              weights=weights)
    path = write_events(raw, tmp_path / "events.parquet")  # untyped event stays untyped
    pairs = weighted_interactions(spark, path, weights).collect()

    expected = data.matrix().tocoo()
    users, items = data.user_vocab.ids, data.item_vocab.ids
    want = {(users[r], items[c]): v for r, c, v in zip(expected.row, expected.col,
                                                       expected.data, strict=True)}
    got = {(row.user_id, row.item_id): row.weight for row in pairs}
    assert got.keys() == want.keys()
    assert all(got[key] == pytest.approx(want[key]) for key in want)
    # Spot checks against the rules, by hand.
    assert got["u1", "a"] == pytest.approx(3.0)  # two views at 1.5
    assert got["u4", "b"] == pytest.approx(4.0)  # a rating of 2.5 and a view
    assert got["u2", "c"] == pytest.approx(1.0)  # a rating without a value
    assert got["u3", "e"] == pytest.approx(0.5)  # a type only the default weighs
    assert ("u2", "b") not in got and ("u2", "d") not in got  # impression, zero rating


@pytest.mark.spark
def test_spark_als_is_a_fitted_tailored_als(spark: Any) -> None:
    data = Dataset.from_frame(shop(n_users=60, n_items=25, n_events=900, seed=2).events)
    model = train_als_on_spark(data, PARAMS, spark=spark)

    assert isinstance(model, ALS) and model.config.factors == 8
    assert model.user_factors_.shape == (data.n_users, 8)
    assert model.item_factors_.shape == (data.n_items, 8)
    assert np.abs(model.item_factors_).sum(axis=1).min() > 0  # every item was solved
    np.testing.assert_array_equal(model.user_vocab_.ids, data.user_vocab.ids)
    assert model.data_digest_ == data.digest
    # A user's own items score higher than the rest, on average: the factors learned.
    scores = model.score(list(data.user_vocab.ids))
    seen = data.matrix().toarray() > 0
    assert scores[seen].mean() > scores[~seen].mean() + 0.1
    top = model.recommend(list(data.user_vocab.ids[:3]), k=5)
    assert len(top) == 15 and not top.merge(
        data.events[["user_id", "item_id"]], on=["user_id", "item_id"]).shape[0]


@pytest.mark.spark
def test_a_spark_version_registers_loads_and_serves(spark: Any, store: Store,
                                                    settings: Settings) -> None:
    trained = train_model_on_spark(store, settings, "als", PARAMS, spark=spark)
    version = trained.version

    assert version.active and version.name == "als"
    assert version.details["engine"] == "spark"
    assert version.details["spark"]["master"].startswith("local")
    assert version.details["config"]["factors"] == 8
    assert "ndcg@10" in version.metrics  # validated on the temporal split, on Spark too

    loaded = Pipeline.load(Path(version.path))
    assert type(loaded.scorer) is ALS
    live = LiveRecommender.active(store)
    some_users = list(loaded.scorer.user_vocab_.ids[:4])
    lists = live.recommend(some_users, k=5, explain=True)
    assert lists.groupby("user_id").size().to_dict() == dict.fromkeys(some_users, 5)
    assert set(lists["reason_kind"]) <= {"history", "model"}
    assert (lists["reason_kind"] == "history").any()
    # The same scores before saving and after loading.
    np.testing.assert_allclose(loaded.scorer.score(some_users),
                               trained.pipeline.scorer.score(some_users), rtol=1e-6)

    single_node = train_model(store, settings, Recipe.of("als", **PARAMS), validate=False,
                              promote=False)
    assert _files(Path(version.path)) == _files(Path(single_node.version.path))
    assert "engine" not in single_node.version.details


def _files(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


@pytest.mark.spark
def test_train_engine_spark_on_the_command_line(spark: Any, store: Store,
                                                settings: Settings) -> None:
    result = CliRunner().invoke(app, [
        "train", "--engine", "spark", "--master", "local[2]", "--model", "als",
        "--set", "factors=4", "--set", "iterations=3", "--store", settings.store_url],
        env={"TAILORED_MODEL_DIR": str(settings.model_dir)})

    assert result.exit_code == 0, result.output
    assert "trained on Spark" in result.output
    version = store.models.active()
    assert version is not None and version.details["engine"] == "spark"
    assert Pipeline.load(Path(version.path)).scorer.config.factors == 4


@pytest.mark.spark
def test_consent_withheld_users_never_reach_spark(spark: Any, store: Store,
                                                  settings: Settings) -> None:
    withheld = store.events.frame()["user_id"].iloc[0]
    store.users.upsert([User(user_id=withheld, consent={"personalization": False})])

    trained = train_model_on_spark(store, settings, "als", PARAMS, validate=False,
                                   spark=spark)

    assert withheld not in set(trained.pipeline.scorer.user_vocab_.ids)


# ---- refusals and missing pieces (no Spark started) ----------------------------------


def test_spark_trains_als_only(store: Store, settings: Settings) -> None:
    with pytest.raises(ValueError, match="Spark trains als only; recipe 'item_knn'"):
        train_model_on_spark(store, settings, "item_knn")
    result = CliRunner().invoke(app, ["train", "--engine", "spark", "--model", "ease",
                                      "--store", settings.store_url])
    assert result.exit_code != 0
    assert "Spark trains als only, not 'ease'" in result.output
    assert store.models.active() is None


def test_an_unknown_engine_is_refused(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["train", "--engine", "flink", "--store",
                                      settings.store_url])
    assert result.exit_code != 0 and "choose memory or spark" in result.output


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # no bin/java there
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkUnavailableError, match=r"needs a Java runtime.*openjdk-17"):
        check_spark()


def test_missing_pyspark_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now fails
    with pytest.raises(SparkUnavailableError, match=r"pip install 'tailored\[spark\]'"):
        check_spark()


# ---- the Parquet export ----------------------------------------------------------------


def test_export_events_writes_what_spark_reads(store: Store, settings: Settings,
                                               tmp_path: Path) -> None:
    withheld = store.events.frame()["user_id"].iloc[0]
    store.users.upsert([User(user_id=withheld, consent={"personalization": False})])
    newest = store.events.frame()["timestamp"].max().to_pydatetime()
    store.events.add([Event(user_id="u-rated", item_id="i-1", event_type="rating", value=4.0,
                            timestamp=newest + timedelta(hours=1),
                            context={"device": "mobile"})])
    output = tmp_path / "out" / "events.parquet"

    result = CliRunner().invoke(app, ["export", "events", "--output", str(output),
                                      "--store", settings.store_url])

    assert result.exit_code == 0, result.output
    assert "1 users withholding consent left out" in result.output
    table = pq.read_table(output)
    assert table.column_names == ["event_id", "user_id", "item_id", "event_type", "value",
                                  "timestamp", "session_id", "context"]
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    frame = table.to_pandas()
    stored = store.events.frame()
    assert len(frame) == (stored["user_id"] != withheld).sum()
    assert withheld not in set(frame["user_id"])
    last = frame.iloc[-1]
    assert (last["user_id"], last["value"], last["context"]) == (
        "u-rated", 4.0, '{"device": "mobile"}')
    with closing(open_store(settings.store_url)) as again:  # the store is untouched
        assert again.events.count() == len(stored)


# ---- accuracy (slow: MovieLens 100K; the full comparison is benchmarks/spark_als.py) ---

ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"


@pytest.mark.slow
@pytest.mark.spark
def test_spark_and_single_node_als_score_alike_on_movielens(spark: Any) -> None:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100K is not at {ML100K}")
    from tailored.dataset import temporal_split
    from tailored.evaluation import evaluate_model
    from tailored.ingest import import_movielens

    with closing(open_store("sqlite://")) as movielens:
        import_movielens(movielens, ML100K)
        split = temporal_split(Dataset.from_store(movielens))
    config = {"factors": 32, "iterations": 15}
    single = evaluate_model(ALS(**config), split, beyond_accuracy=False).metrics["ndcg@10"]
    on_spark = evaluate_model(train_als_on_spark(split.train, config, spark=spark), split,
                              fit=False, beyond_accuracy=False).metrics["ndcg@10"]

    # Seed-to-seed spread of either is about 0.003 (benchmarks/results/spark_als.md).
    assert single > 0.15 and on_spark > 0.15
    assert on_spark == pytest.approx(single, abs=0.03)
