"""The learned ranker: candidates from several sources, features, then a model that orders them.

:class:`LearnedRanker` (``ranked``) is a LightGBM LambdaRank model (``objective =
"lambdarank"``); :class:`StackedRanker` (``stacked``) is the comparison: a
logistic-regression meta-learner over the sources' scores. Both are
:class:`~tailored.models.Recommender` s, so ``fit``, ``recommend``, ``save``/``load``,
the CLI, evaluation and serving treat them like any model.

How the ranker learns (all inside ``fit``, from the training data alone):

1. A temporal split is carved from the training data: the last ``label_fraction`` of
   its events (by time; per user by order when there are no timestamps) is the *label
   period*; the rest is the *history*.
2. The candidate sources (:mod:`tailored.ranking.candidates`) and the feature statistics
   (:mod:`tailored.ranking.features`) are fitted on the history.
3. For users active in the label period (at most ``max_train_users``), candidates are
   generated from their history; a candidate's label is 1 when the user interacted with
   it in the label period. Users with no positive candidate teach nothing and are
   dropped; each remaining user keeps all positives and ``negatives`` candidates sampled
   from their list. The context of a training user is their first event of the label
   period (the event that asked).
4. The preprocessing and the ranker are fitted on those rows; then sources and feature
   statistics are fitted again on all the training data, which is what serves.

Scores: candidates get the ranker's score; other items score below every candidate
(ordered by the first source), so every score is finite.

``explain_features`` gives each recommended item's top feature contributions (LightGBM
``pred_contrib``: per-feature SHAP values that add up, with the bias, to the score;
for the stacked variant the exact linear terms), and ``explanations`` (the shared
Recommender API) names those features in its reason.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset, UserQuery, event_weights
from tailored.errors import InvalidDataError
from tailored.models import ModelConfig, Recommender, ScoringBatch
from tailored.models.base import DroppedUsers, Reason, Users

from .candidates import CandidateGenerator, CandidateSet, CandidateSource, check_sources
from .features import (
    FeatureBuilder,
    FeatureConfig,
    Features,
    PreprocessingConfig,
    Preprocessor,
    event_context,
    query_context,
)

_BLOCK_CELLS = 2**22  # users x items x sources scored at once
_MIN_USER_EVENTS = 2  # a user needs history left after the label period


def default_sources() -> list[CandidateSource]:
    """Collaborative filtering, item-kNN (all and recent items), trending, popular: what
    any event log supports. Content needs an item table, so the ``ranked`` recipe adds it
    for catalogs that have one."""
    return [CandidateSource(model="als", n=100),
            CandidateSource(model="item_knn", n=50),
            CandidateSource(name="item_knn_recent", model="item_knn", recent_items=5, n=30),
            CandidateSource(model="trending", n=20),
            CandidateSource(model="popular", n=30)]


class RankerConfig(ModelConfig):
    """What both rankers share.

    ``sources``: the candidate sources (:class:`CandidateSource`). ``label_fraction``:
    the share of the latest training events whose interactions are the labels: each
    user's latest share (``label_split = "per-user"``, users with at least 3 events: the
    most training users) or the latest share of all events (``"global"``: one time cut,
    like a temporal split). ``label_scope``: ``period`` labels everything the user did in
    the label period (relevance 1); ``session`` only what they did in the session that
    asked (their first session of the label period, when events carry a ``session_id``),
    so the context of that moment explains the labels; ``graded`` (default) labels both,
    the asking session's items with relevance 2, the rest of the period with 1.
    ``max_train_users``: users sampled for the ranker's training rows. ``negatives``:
    unlabelled candidates sampled per user. ``features`` and ``preprocessing``: see
    :mod:`tailored.ranking.features`. ``seed``: sampling (and model) seed.
    """

    sources: list[CandidateSource] = Field(default_factory=default_sources)
    label_fraction: float = Field(default=0.2, gt=0, lt=1)
    label_split: Literal["per-user", "global"] = "per-user"
    label_scope: Literal["graded", "session", "period"] = "graded"
    max_train_users: int = Field(default=20_000, ge=1)
    negatives: int = Field(default=100, ge=1)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    seed: int = Field(default=0, ge=0)

    def model_post_init(self, __context: Any) -> None:
        check_sources(self.sources)


class LearnedRankerConfig(RankerConfig):
    """LightGBM parameters: ``n_estimators`` trees of at most ``num_leaves`` leaves,
    ``learning_rate``, ``min_child_samples`` rows per leaf, ``n_jobs`` threads."""

    n_estimators: int = Field(default=200, ge=1, le=10_000)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=4096)
    min_child_samples: int = Field(default=20, ge=1)
    n_jobs: int = Field(default=1, ge=1)


def _score_features() -> FeatureConfig:
    return FeatureConfig(item=False, user=False, user_attributes=False, match=False,
                         context=False)


class StackedRankerConfig(RankerConfig):
    """A logistic regression over the sources' scores (z-scored): ``regularization`` is
    the inverse of scikit-learn's ``C``. By default it sees only the source features."""

    features: FeatureConfig = Field(default_factory=_score_features)
    preprocessing: PreprocessingConfig = Field(
        default_factory=lambda: PreprocessingConfig(scale="zscore"))
    regularization: float = Field(default=1.0, gt=0)


class _CandidateRanker(Recommender):
    """Candidates -> features -> a learned scorer; subclasses supply the scorer."""

    config: RankerConfig
    generator_: CandidateGenerator
    features_: FeatureBuilder
    preprocessor_: Preprocessor

    @property
    def reads_profiles(self) -> bool:
        return self.is_fitted and (self.generator_.parts.read_profiles
                                   or self.features_.reads_profiles)

    # ---- learning --------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        history, labels = self._carve(data)
        generator = CandidateGenerator(self.config.sources).fit(history)
        features = FeatureBuilder(self.config.features).fit(
            history, generator.anchor.item_vocab_.ids, generator.anchor.user_vocab_.ids)
        users, contexts, positives = self._label_users(generator, labels)
        batch = generator.resolve(UserQuery(tuple(users)))
        rows_x, rows_y, groups = [], [], []
        numeric_names: list[str] = []
        categorical_names: list[str] = []
        rng = np.random.default_rng(self.config.seed)
        for start, stop in self._blocks(len(batch), len(generator.anchor.item_vocab_)):
            part = batch.rows(start, stop)
            candidates, matrices = generator.generate(part)
            keep, target = self._sample(candidates, positives[start:stop], rng)
            if not len(keep):
                continue
            chosen = candidates.take(keep)
            built = features.build(part, chosen, matrices, contexts.iloc[start:stop],
                                   part.users)
            rows_x.append(built)
            rows_y.append(target)
            groups.append(chosen.group_sizes(len(part)))
            numeric_names, categorical_names = built.numeric_names, built.categorical_names
        if not rows_x:
            raise InvalidDataError(
                f"the {self.name} ranker found no training examples: no user of the label "
                f"period (the last {self.config.label_fraction:.0%} of the events) had a "
                "candidate they went on to interact with. Use more data, more candidates "
                "per source (n) or a larger label_fraction.")
        target = np.concatenate(rows_y)
        numeric = np.vstack([b.numeric for b in rows_x])
        categorical = np.vstack([b.categorical for b in rows_x])
        sizes = np.concatenate(groups)
        sizes = sizes[sizes > 0]
        preprocessor = Preprocessor(self.config.preprocessing)
        matrix_x = preprocessor.fit_transform(numeric, numeric_names, categorical,
                                              categorical_names, target)
        self._learn(matrix_x, target, sizes)
        self.preprocessor_ = preprocessor
        self.training_rows_ = len(target)
        self.training_users_ = len(sizes)
        # What serves: sources and statistics from all the training data.
        self.generator_ = CandidateGenerator(self.config.sources).fit(data)
        self.features_ = FeatureBuilder(self.config.features).fit(
            data, self.item_vocab_.ids, self.user_vocab_.ids)

    def _carve(self, data: Dataset) -> tuple[Dataset, pd.DataFrame]:
        """History (a dataset) and label-period events, from the training data only."""
        events = data.events
        fraction = self.config.label_fraction
        timed = events["timestamp"].notna().all() and events["timestamp"].nunique() > 1
        if self.config.label_split == "global" and timed:
            cut = events["timestamp"].quantile(1 - fraction)
            in_labels = (events["timestamp"] >= cut).to_numpy()
            if in_labels.all():
                in_labels = (events["timestamp"] > cut).to_numpy()
        else:  # each user's latest events (by time, else by order)
            order = (np.lexsort((np.arange(len(events)), events["timestamp"].to_numpy()))
                     if timed else np.arange(len(events)))
            users = events["user_id"].to_numpy()[order]
            user_order = pd.Series(users)
            position = user_order.groupby(users).cumcount(ascending=False).to_numpy()
            sizes = user_order.groupby(users).transform("size").to_numpy()
            held = np.clip(np.ceil(sizes * fraction - 1e-9), 1, None)
            in_labels = np.zeros(len(events), dtype=bool)
            in_labels[order] = (sizes >= _MIN_USER_EVENTS) & (position < held)
        history = data.filter(~in_labels)
        if history.events.empty:
            raise InvalidDataError(f"the {self.name} ranker needs events before its label "
                                   "period; the data is too small or all at one time")
        in_period: pd.DataFrame = events[in_labels]
        interest = event_weights(in_period, data.weights) > 0  # impressions are not interest
        label_events: pd.DataFrame = in_period[interest].copy()
        label_events["_relevance"] = 1
        if self.config.label_scope != "period" and "session_id" in label_events.columns \
                and label_events["session_id"].notna().any():
            ordered: pd.DataFrame = (label_events.sort_values("timestamp", kind="stable")
                                     if timed else label_events)
            asking = ordered.drop_duplicates("user_id").set_index("user_id")["session_id"]
            session = asking.reindex(label_events["user_id"]).to_numpy(dtype=object)
            same = (label_events["session_id"].to_numpy(dtype=object) == session) | \
                pd.isna(session)
            if self.config.label_scope == "session":
                label_events = label_events[same]
            else:
                label_events.loc[same, "_relevance"] = 2
        return history, label_events

    def _label_users(self, generator: CandidateGenerator, labels: pd.DataFrame
                     ) -> tuple[list[str], pd.DataFrame, list[dict[int, int]]]:
        """Label-period users the history knows, their context and positive items (with
        their relevance)."""
        vocab = generator.anchor.user_vocab_
        known = vocab.indices(labels["user_id"].astype(str)) >= 0
        labels = labels[known]
        order = np.argsort(pd.to_datetime(labels["timestamp"], utc=True).to_numpy(),
                           kind="stable") if labels["timestamp"].notna().all() else \
            np.arange(len(labels))
        labels = labels.iloc[order]
        users = sorted(labels["user_id"].astype(str).unique())
        if len(users) > self.config.max_train_users:
            rng = np.random.default_rng(self.config.seed)
            users = sorted(rng.choice(users, self.config.max_train_users, replace=False))
        first = labels.drop_duplicates("user_id").set_index("user_id")
        contexts = event_context(first).reindex(users).reset_index(drop=True)
        items = generator.anchor.item_vocab_.indices(labels["item_id"].astype(str))
        by_user: dict[str, dict[int, int]] = {user: {} for user in users}
        for user, item, grade in zip(labels["user_id"].astype(str), items,
                                     labels["_relevance"].to_numpy(), strict=True):
            if item >= 0 and user in by_user:
                by_user[user][int(item)] = max(int(grade), by_user[user].get(int(item), 0))
        return users, contexts, [by_user[user] for user in users]

    def _sample(self, candidates: CandidateSet, positives: Sequence[dict[int, int]],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Rows to keep (positives and sampled negatives of users with a positive) and
        their relevance."""
        grade = np.array([positives[row].get(int(item), 0) for row, item in
                          zip(candidates.rows, candidates.items, strict=True)], dtype=np.int64)
        label = grade > 0
        keep: list[np.ndarray] = []
        starts = np.searchsorted(candidates.rows, np.arange(len(positives) + 1))
        for row in range(len(positives)):
            span = np.arange(starts[row], starts[row + 1])
            hits = span[label[span]]
            if not len(hits):
                continue
            misses = span[~label[span]]
            if len(misses) > self.config.negatives:
                misses = np.sort(rng.choice(misses, self.config.negatives, replace=False))
            keep.append(np.sort(np.concatenate([hits, misses])))
        rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
        return rows, grade[rows].astype(np.float64)

    @staticmethod
    def _blocks(n_rows: int, n_items: int) -> list[tuple[int, int]]:
        step = max(1, _BLOCK_CELLS // max(1, n_items * 4))
        return [(start, min(n_rows, start + step)) for start in range(0, n_rows, step)]

    @abstractmethod
    def _learn(self, matrix: np.ndarray, target: np.ndarray, groups: np.ndarray) -> None:
        """Fit the learner on feature rows, their labels and query group sizes."""

    @abstractmethod
    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        """One score per feature row."""

    @abstractmethod
    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per row, each feature's share of the score, then the bias (last column)."""

    # ---- scoring ---------------------------------------------------------------------

    def _resolve(self, users: Users) -> ScoringBatch:
        return self.generator_.resolve(users)

    def _features(self, batch: ScoringBatch, candidates: CandidateSet,
                  matrices: list[np.ndarray]) -> np.ndarray:
        contexts = query_context(batch.context, len(batch))
        user_rows = self.user_vocab_.indices(list(batch.user_ids))
        built: Features = self.features_.build(batch, candidates, matrices, contexts, user_rows)
        return self.preprocessor_.transform(built.numeric, built.categorical)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        n_items = len(self.item_vocab_)
        scores = np.zeros((len(batch), n_items), dtype=np.float32)
        for start, stop in self._blocks(len(batch), n_items):
            part = batch.rows(start, stop)
            candidates, matrices = self.generator_.generate(part)
            predicted = self._predict(self._features(part, candidates, matrices))
            scores[start:stop] = _spread(predicted, candidates, matrices[0])
        return scores

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        if batch is None:
            first = self.generator_.parts[self.config.sources[0]]
            return first._fallback(None)
        return self._score(batch)

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return self.generator_.parts[self.config.sources[0]]._item_similarity(columns)

    # ---- explanations ----------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """Names of the ranker's inputs after preprocessing (one-hot columns read
        ``name=value``; target-encoded ones ``name_target_mean``)."""
        self._check_fitted()
        return list(self.preprocessor_.names_)

    def _pair_contributions(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and contributions (bias last) of given (batch row, item) pairs."""
        candidates, matrices = self.generator_.pairs(batch, rows, columns)
        matrix = self._features(batch, candidates, matrices)
        return matrix, self._contributions(matrix)

    def explain_features(self, users: Users, k: int = 10, top: int = 3,
                         **recommend: Any) -> pd.DataFrame:
        """The top ``top`` feature contributions of each of the ``k`` recommended items.

        Returns one row per (user, item, feature): ``user_id``, ``item_id``, ``rank``,
        ``feature`` (an input of :attr:`feature_names`), ``value`` (its value after
        preprocessing), ``contribution`` (its share of the item's score; all
        contributions plus ``bias`` add up to ``score``), largest contribution first.
        ``recommend`` passes on to :meth:`recommend` (``exclude``, ``candidates``...).
        """
        recs = self.recommend(users, k=k, **recommend)
        batch = self._resolve(users)
        row_of = {user: row for row, user in enumerate(batch.user_ids)}
        rows = np.array([row_of[str(u)] for u in recs["user_id"]], dtype=np.int64)
        columns = self.item_vocab_.indices(recs["item_id"].astype(str).tolist())
        frames = []
        for start, stop in self._blocks(len(rows), len(self.item_vocab_)):
            picked = rows[start:stop]
            inside = np.unique(picked)
            sub = batch.take(inside)
            local = np.searchsorted(inside, picked)
            matrix, contributions = self._pair_contributions(sub, local, columns[start:stop])
            order = np.argsort(-contributions[:, :-1], axis=1, kind="stable")[:, :top]
            chosen = np.take_along_axis(contributions[:, :-1], order, axis=1)
            frames.append(pd.DataFrame({
                "user_id": np.repeat(recs["user_id"].to_numpy()[start:stop], order.shape[1]),
                "item_id": np.repeat(recs["item_id"].to_numpy()[start:stop], order.shape[1]),
                "rank": np.repeat(recs["rank"].to_numpy()[start:stop], order.shape[1]),
                "feature": np.asarray(self.preprocessor_.names_, dtype=object)[order].ravel(),
                "value": np.take_along_axis(matrix, order, axis=1).ravel(),
                "contribution": chosen.ravel(),
                "bias": np.repeat(contributions[:, -1], order.shape[1]),
                "score": np.repeat(contributions.sum(axis=1), order.shape[1]),
            }))
        if not frames:
            return pd.DataFrame(columns=["user_id", "item_id", "rank", "feature", "value",
                                         "contribution", "bias", "score"])
        return pd.concat(frames, ignore_index=True)

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        reasons: list[Reason] = []
        for start, stop in self._blocks(len(rows), len(self.item_vocab_)):
            _, contributions = self._pair_contributions(batch, rows[start:stop],
                                                        columns[start:stop])
            names = self.preprocessor_.names_
            for row in contributions[:, :-1]:
                order = [int(i) for i in np.argsort(-row, kind="stable")[:3] if row[i] > 0]
                reasons.append(Reason("features", features=tuple(names[i] for i in order))
                               if order else Reason("model"))
        return reasons

    def _explain_fallback(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                          ) -> list[Reason]:
        return self._explain(batch, rows, columns)

    # ---- forgetting and persistence ---------------------------------------------------

    def _profile_ids(self) -> list[np.ndarray]:
        return [self.features_.user_table_ids_, *self.generator_.parts.profile_ids()]

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        self.generator_.forget(self, dropped)
        self.features_.forget(dropped)
        # The ranker, its preprocessing and the item statistics learned from them.
        return False

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"candidates.{k}": v for k, v in self.generator_.arrays().items()}
        arrays.update({f"features.{k}": v for k, v in self.features_.arrays().items()})
        arrays.update({f"prep.{k}": v for k, v in self.preprocessor_.arrays().items()})
        arrays.update({f"ranker.{k}": v for k, v in self._learner_arrays().items()})
        arrays["training"] = np.array([self.training_rows_, self.training_users_])
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        def strip(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        self.generator_ = CandidateGenerator(self.config.sources).restore(
            self, strip("candidates."))
        self.features_ = FeatureBuilder(self.config.features).restore(strip("features."))
        self.preprocessor_ = Preprocessor(self.config.preprocessing).restore(strip("prep."))
        self._restore_learner(strip("ranker."))
        self.training_rows_, self.training_users_ = (int(v) for v in arrays["training"])

    @abstractmethod
    def _learner_arrays(self) -> dict[str, np.ndarray]:
        """The fitted learner as named arrays (never pickle)."""

    @abstractmethod
    def _restore_learner(self, arrays: dict[str, np.ndarray]) -> None:
        """The learner back from ``_learner_arrays`` output."""


def _spread(predicted: np.ndarray, candidates: CandidateSet, first: np.ndarray) -> np.ndarray:
    """Candidate scores into a users x items matrix; other items below every candidate,
    ordered by the first source."""
    n_rows, n_items = first.shape
    floor = np.zeros(n_rows)
    if len(predicted):
        lowest = pd.Series(predicted).groupby(candidates.rows).min()
        floor[lowest.index.to_numpy()] = lowest.to_numpy()
    base = np.asarray(first, dtype=np.float64)
    base = np.where(np.isfinite(base), base, np.nan)
    low = np.nan_to_num(np.nanmin(base, axis=1, keepdims=True) if n_items else base)
    high = np.nan_to_num(np.nanmax(base, axis=1, keepdims=True) if n_items else base)
    squashed = np.nan_to_num((base - low) / np.where(high > low, high - low, 1.0))
    scores = floor[:, None] - 2.0 + squashed
    scores[candidates.rows, candidates.items] = predicted
    return scores.astype(np.float32)


#: Small candidate sources for the family's example (tests and docs on tiny data).
_EXAMPLE_SOURCES = [{"model": "item_knn", "n": 8},
                    {"name": "recent", "model": "item_knn", "recent_items": 3, "n": 4},
                    {"model": "popular", "n": 4}]


class LearnedRanker(_CandidateRanker):
    """LightGBM LambdaRank over candidates from several sources, with context.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> ranker = LearnedRanker(sources=[{"model": "item_knn", "n": 8},
    ...                                 {"model": "popular", "n": 4}],
    ...                        label_split="global", n_estimators=20, min_child_samples=2)
    >>> ranker = ranker.fit(checkerboard())
    >>> ranker.recommend("a000", k=3)["item_id"].str[0].tolist()
    ['A', 'A', 'A']
    >>> "item_knn_zscore" in ranker.feature_names
    True
    """

    name = "ranked"
    # One time cut: a few users with random times are too few for per-user labels.
    example_params: ClassVar[dict[str, Any]] = {
        "sources": _EXAMPLE_SOURCES, "label_split": "global",
        "n_estimators": 20, "min_child_samples": 2}
    Config = LearnedRankerConfig
    config: LearnedRankerConfig
    booster_: Any

    def _learn(self, matrix: np.ndarray, target: np.ndarray, groups: np.ndarray) -> None:
        import lightgbm

        config = self.config
        model = lightgbm.LGBMRanker(
            objective="lambdarank", n_estimators=config.n_estimators,
            learning_rate=config.learning_rate, num_leaves=config.num_leaves,
            min_child_samples=config.min_child_samples, random_state=config.seed,
            n_jobs=config.n_jobs, deterministic=True, force_row_wise=True, verbose=-1)
        model.fit(matrix, target.astype(np.int64), group=groups)
        self.booster_ = model.booster_

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.zeros(0)
        return np.asarray(self.booster_.predict(matrix), dtype=np.float64)

    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.zeros((0, matrix.shape[1] + 1))
        return np.asarray(self.booster_.predict(matrix, pred_contrib=True), dtype=np.float64)

    def feature_importance(self) -> pd.Series:
        """Total gain per input feature, largest first."""
        self._check_fitted()
        gains = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gains, index=self.preprocessor_.names_).sort_values(ascending=False)

    def _learner_arrays(self) -> dict[str, np.ndarray]:
        text = self.booster_.model_to_string()
        return {"lightgbm": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}

    def _restore_learner(self, arrays: dict[str, np.ndarray]) -> None:
        import lightgbm

        text = arrays["lightgbm"].tobytes().decode("utf-8")
        self.booster_ = lightgbm.Booster(model_str=text)

    @property
    def model_text(self) -> str:
        """The LightGBM model in its own text format (as saved in the artifact)."""
        self._check_fitted()
        return str(self.booster_.model_to_string())


class StackedRanker(_CandidateRanker):
    """A logistic regression over the candidate sources' scores (stacking).

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> stacked = StackedRanker(sources=[{"model": "item_knn", "n": 8},
    ...                                  {"model": "popular", "n": 4}]).fit(checkerboard())
    >>> stacked.recommend("b000", k=2)["item_id"].str[0].tolist()
    ['B', 'B']
    """

    name = "stacked"
    example_params: ClassVar[dict[str, Any]] = {"sources": _EXAMPLE_SOURCES, "regularization": 10.0}
    Config = StackedRankerConfig
    config: StackedRankerConfig
    coef_: np.ndarray
    intercept_: float

    def _learn(self, matrix: np.ndarray, target: np.ndarray, groups: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        target = target > 0
        if len(np.unique(target)) < 2:
            raise InvalidDataError("the stacked ranker needs both interacted and skipped "
                                   "candidates to learn from; every sampled candidate had "
                                   "the same label")
        model = LogisticRegression(C=1.0 / self.config.regularization, max_iter=2000)
        model.fit(matrix, target.astype(np.int64))
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        return matrix @ self.coef_ + self.intercept_

    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        return np.hstack([matrix * self.coef_[None, :],
                          np.full((len(matrix), 1), self.intercept_)])

    def _learner_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _restore_learner(self, arrays: dict[str, np.ndarray]) -> None:
        self.coef_ = arrays["coef"]
        self.intercept_ = float(arrays["intercept"][0])


__all__ = ["LearnedRanker", "LearnedRankerConfig", "RankerConfig", "StackedRanker",
           "StackedRankerConfig", "default_sources"]
