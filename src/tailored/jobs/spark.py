"""Training on Apache Spark (``tailored train --engine spark``): ALS solved by
``pyspark.ml``, saved and registered as the same artifact a single-node ALS gives.

What runs where:

- The driver reads the store's snapshot as every training does
  (:meth:`~tailored.dataset.Dataset.from_store`): the vocabularies, the user-item
  history and the popularity fallback it holds are part of the artifact serving loads.
- Spark reads those events from Parquet (:func:`~tailored.jobs.parquet.write_events`),
  weighs them by event type (:func:`weighted_interactions`, the same weights and rules
  as :func:`tailored.dataset.event_weights`), turns weights into confidence as
  :class:`~tailored.models.ALS` does, and solves the factors with
  ``pyspark.ml.recommendation.ALS`` (implicit preferences).
- The factors come back to the driver in the vocabularies' order and become a fitted
  :class:`~tailored.models.ALS` (:meth:`~tailored.models.ALS.from_factors`): saving,
  loading, fold-in, recommendations and explanations are the single-node code.

Where Spark's ALS differs from ``implicit``'s (the single-node solver), with the same
``factors``, ``regularization``, ``alpha``, ``iterations``:

- confidence: Spark uses c = 1 + alpha·s, ``implicit`` c = alpha·s, for a scaled weight
  s (after ``log1p``, say); both take preference 1 for every stored entry;
- regularization: Spark multiplies λ by each user's (item's) number of entries (ALS-WR,
  Zhou et al., 2008); ``implicit`` uses λ as is;
- initialisation and random streams differ, so the same seed gives different factors.

``benchmarks/spark_als.py`` measures what that does to accuracy on MovieLens 100K
(``benchmarks/results/spark_als.md``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tailored.dataset import Dataset, temporal_split
from tailored.errors import TailoredError
from tailored.evaluation import evaluate_model
from tailored.jobs.parquet import write_events
from tailored.jobs.train import Progress, TrainedModel, register_model
from tailored.models.als import ALS, ALSConfig
from tailored.pipeline import Pipeline, Recipe
from tailored.schema import EventWeights
from tailored.settings import Settings
from tailored.store import Store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The model families Spark trains.
SPARK_FAMILIES = ("als",)
DEFAULT_MASTER = "local[2]"


class SparkUnavailableError(TailoredError, RuntimeError):
    """PySpark or the Java runtime it needs is missing."""


def check_spark() -> str:
    """PySpark's version, once PySpark imports and a Java runtime is found; raises
    :class:`SparkUnavailableError` saying what to install otherwise."""
    try:
        import pyspark
    except ImportError:
        raise SparkUnavailableError(
            "training on Spark needs PySpark, which is not installed: pip install "
            "'tailored[spark]' (or pip install 'pyspark>=3.5')") from None
    java_home = os.environ.get("JAVA_HOME")
    java = (Path(java_home) / "bin" / "java") if java_home else None
    if not (java is not None and java.exists()) and shutil.which("java") is None:
        raise SparkUnavailableError(
            "PySpark needs a Java runtime (17 or later) and none was found: JAVA_HOME is "
            f"{'unset' if not java_home else repr(java_home) + ' (no bin/java there)'} and "
            "there is no java on PATH. Install one (e.g. apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME")
    return str(pyspark.__version__)


@contextlib.contextmanager
def spark_session(master: str = DEFAULT_MASTER, *, driver_memory: str = "1g"
                  ) -> Iterator[SparkSession]:
    """A Spark session on ``master`` (``local[2]``: two cores of this machine;
    ``spark://host:7077``, ``yarn``, ...), stopped on leaving; a session already active
    in this process is used as it is and left running."""
    check_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    checkpoints = tempfile.mkdtemp(prefix="tailored-spark-")
    with _quiet_pandas():
        spark = _build_session(master, driver_memory)
    spark.sparkContext.setLogLevel("ERROR")
    # Long ALS runs need checkpoints to cut their lineage (else a stack overflow).
    spark.sparkContext.setCheckpointDir(checkpoints)
    try:
        yield spark
    finally:
        spark.stop()
        shutil.rmtree(checkpoints, ignore_errors=True)


def _build_session(master: str, driver_memory: str) -> SparkSession:
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName("tailored")
            .config("spark.driver.memory", driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate())


def weighted_interactions(spark: SparkSession, path: str | Path,
                          weights: EventWeights) -> DataFrame:
    """The events in the Parquet file ``path`` as (``user_id``, ``item_id``, ``weight``),
    one row per pair, summing event weights: Spark's side of
    :func:`tailored.dataset.interaction_matrix` (no time decay).

    As there: an event without a type is a view; a type weighing ``"value"`` weighs its
    event's value (1 without one); events of a type weighing 0 (impressions) are no
    interest and events whose weight is 0 add nothing.
    """
    from pyspark.sql import functions as F

    events = spark.read.parquet(str(path))
    kind = F.coalesce(F.col("event_type"), F.lit("view"))
    value = F.coalesce(F.col("value").cast("double"), F.lit(1.0))
    types = {t: weights.for_type(t) for t in weights.event_types()}
    weight = F.lit(float(weights.default))
    for event_type, type_weight in types.items():
        weight = F.when(kind == event_type,
                        value if type_weight == "value" else F.lit(float(type_weight))
                        ).otherwise(weight)
    zero = sorted(weights.zero_weight_types())
    interest = events.where(~kind.isin(zero)) if zero else events
    weighed = interest.select(F.col("user_id").cast("string").alias("user_id"),
                              F.col("item_id").cast("string").alias("item_id"),
                              weight.alias("weight"))
    return (weighed.where(F.col("weight") != 0)
            .groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight")))


def spark_als(config: ALSConfig) -> Any:
    """The ``pyspark.ml`` estimator for a tailored ALS config (see the module docstring
    for how the two solvers differ)."""
    from pyspark.ml.recommendation import ALS as SparkALS

    return SparkALS(rank=config.factors, regParam=config.regularization, alpha=config.alpha,
                    maxIter=config.iterations, implicitPrefs=True, seed=config.seed,
                    userCol="user", itemCol="item", ratingCol="rating", nonnegative=False,
                    checkpointInterval=10)


def train_als_on_spark(data: Dataset, config: ALSConfig | Mapping[str, Any] | None = None,
                       *, spark: SparkSession | None = None,
                       master: str = DEFAULT_MASTER) -> ALS:
    """Solve ALS for ``data`` on Spark and return a fitted :class:`ALS`, the same kind of
    object ``ALS(config).fit(data)`` returns.

    ``data``'s events go to Spark as Parquet (a temporary file), weighted with
    ``data.weights``. ``spark``: a running session (else one on ``master`` is started
    and stopped).
    """
    if not isinstance(config, ALSConfig):
        config = ALSConfig(**(config or {}))
    if spark is None:
        with spark_session(master) as started:
            return train_als_on_spark(data, config, spark=started)
    from pyspark.sql import functions as F

    with tempfile.TemporaryDirectory(prefix="tailored-spark-") as tmp:
        path = write_events(data.events, Path(tmp) / "events.parquet")
        pairs = weighted_interactions(spark, path, data.weights)
        scaled = F.col("weight").cast("double")
        if config.confidence == "log1p":
            scaled = F.log1p(scaled)
        elif config.confidence == "binary":
            scaled = F.lit(1.0)
        with _quiet_pandas():
            users = spark.createDataFrame(pd.DataFrame(
                {"user_id": data.user_vocab.ids.astype(str), "user": np.arange(data.n_users)}))
            items = spark.createDataFrame(pd.DataFrame(
                {"item_id": data.item_vocab.ids.astype(str), "item": np.arange(data.n_items)}))
        ratings = (pairs.join(F.broadcast(users), "user_id").join(F.broadcast(items), "item_id")
                   .select(F.col("user").cast("int"), F.col("item").cast("int"),
                           scaled.cast("float").alias("rating")))
        blocks = max(1, spark.sparkContext.defaultParallelism)
        estimator = spark_als(config).setNumUserBlocks(blocks).setNumItemBlocks(blocks)
        fitted = estimator.fit(ratings)
        user_factors = _factors(fitted.userFactors, data.n_users, config.factors)
        item_factors = _factors(fitted.itemFactors, data.n_items, config.factors)
    return ALS.from_factors(data, user_factors, item_factors, config)


@contextlib.contextmanager
def _quiet_pandas() -> Iterator[None]:
    """PySpark 4.0 warns on every pandas conversion that it does not fully support
    pandas 3; the conversions used here (ids, ints, float arrays) are covered by its
    tests, and the warning would only bury the progress messages."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas",
                                FutureWarning)
        warnings.filterwarnings("ignore", "The copy keyword is deprecated")
        yield


def _factors(frame: DataFrame, rows: int, rank: int) -> np.ndarray:
    """Spark's (id, features) rows as a dense array; ids it never saw (no entry with a
    non-zero weight) keep zeros, as ``implicit`` leaves them."""
    with _quiet_pandas():
        table = frame.toPandas()
    factors = np.zeros((rows, rank), dtype=np.float32)
    if len(table):
        factors[table["id"].to_numpy()] = np.stack(list(table["features"]))
    return factors


def train_model_on_spark(store: Store, settings: Settings, recipe: str | Recipe,
                         params: Mapping[str, Any] | None = None, *,
                         master: str = DEFAULT_MASTER, validate: bool = True,
                         promote: bool = True, spark: SparkSession | None = None,
                         progress: Progress | None = None) -> TrainedModel:
    """:func:`~tailored.jobs.train_model` with the ALS factors solved on Spark.

    The recipe's model must be ALS (:data:`SPARK_FAMILIES`); its rules and re-rankers
    are kept. The version is registered like any other, its details saying
    ``engine: spark`` (with the master and the Spark version); serving loads it as it
    loads any ALS.
    """
    if isinstance(recipe, str):
        recipe = Recipe.of(recipe, **(params or {}))
    elif params:
        raise TypeError("params go inside the recipe")
    if recipe.model.model not in SPARK_FAMILIES:
        raise ValueError(
            f"Spark trains {', '.join(SPARK_FAMILIES)} only; recipe {recipe.name!r} uses "
            f"{recipe.model.model!r}. Train it with the default engine (--engine memory), "
            "or pick --model als")
    config = ALSConfig(**recipe.model.params)
    spark_version = check_spark()
    step = progress or (lambda _message: None)
    step("reading the store")
    read_at, seen = datetime.now(UTC), store.privacy.last_erasure_id()
    data = Dataset.from_store(store, settings.event_weights)
    metrics: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        if spark is None:
            step(f"starting Spark on {master}")
            spark = stack.enter_context(
                spark_session(master, driver_memory=settings.spark_driver_memory))
        used = spark.sparkContext.master
        if validate and data.events["timestamp"].notna().all():
            step("validating on a temporal split (on Spark)")
            split = temporal_split(data)
            if split.test_users:
                held_out = train_als_on_spark(split.train, config, spark=spark)
                pipeline = Pipeline(held_out, recipe.pipeline_config()).fit_stages(split.train)
                metrics = evaluate_model(pipeline, split, fit=False).metrics
        step(f"fitting {recipe.name} on {len(data):,} events on Spark ({used})")
        started = time.perf_counter()
        model = train_als_on_spark(data, config, spark=spark)
        seconds = time.perf_counter() - started
    pipeline = Pipeline(model, recipe.pipeline_config()).fit_stages(data)
    details = {"engine": "spark", "spark": {"master": used, "version": spark_version,
                                            "fit_seconds": round(seconds, 2)}}
    version = register_model(store, settings, recipe, pipeline, data, metrics,
                             promote=promote, details=details, erasures_seen=seen)
    if promote:
        store.privacy.mark_retrained(read_at)
    return TrainedModel(version, pipeline, metrics)
