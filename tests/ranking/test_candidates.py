"""Candidate generation: several sources, de-duplicated, each source's evidence recorded."""

from __future__ import annotations

import numpy as np
import pytest

from tailored.dataset import UserQuery
from tailored.models import ItemKNN, Popular
from tailored.ranking import CandidateGenerator, CandidateSource
from tailored.testing import checkerboard


@pytest.fixture(scope="module")
def generator() -> CandidateGenerator:
    return CandidateGenerator([
        CandidateSource(model="item_knn", n=3),
        CandidateSource(name="recent", model="item_knn", recent_items=2, n=3),
        CandidateSource(model="popular", n=2)]).fit(checkerboard())


def test_candidates_are_the_deduplicated_union_of_the_sources(
        generator: CandidateGenerator) -> None:
    data = checkerboard()
    frame = generator.frame(["a000"])
    assert frame["item_id"].is_unique
    seen = set(data.events.loc[data.events["user_id"] == "a000", "item_id"])
    assert not seen & set(frame["item_id"])
    knn = ItemKNN().fit(data).recommend("a000", k=3)["item_id"]
    popular = Popular().fit(data).recommend("a000", k=2)["item_id"]
    assert set(knn) | set(popular) <= set(frame["item_id"])
    for item in knn:
        assert "item_knn" in frame.set_index("item_id").loc[item, "sources"].split(",")


def test_every_source_scores_and_ranks_every_candidate(generator: CandidateGenerator) -> None:
    data = checkerboard()
    frame = generator.frame(["a000"]).set_index("item_id")
    popular = Popular().fit(data)
    scores = popular.score(["a000"], items=list(frame.index))[0]
    np.testing.assert_allclose(frame["popular_score"], scores)
    proposed = frame["sources"].str.contains("popular")
    assert (frame.loc[proposed, "popular_rank"] <= 2).all()
    assert (frame.loc[~proposed, "popular_rank"] > 2).all()


def test_recent_items_score_from_the_last_items_only(generator: CandidateGenerator) -> None:
    query = UserQuery.from_histories({"u": ["A000", "A001", "B000", "B001"]})
    frame = generator.frame(query).set_index("item_id")
    proposed_by_recent = frame[frame["sources"].str.contains("recent")].index
    # The last two items are B items: their neighbours are B items.
    assert len(proposed_by_recent) and all(item.startswith("B") for item in proposed_by_recent)


def test_source_names_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        CandidateGenerator([CandidateSource(model="popular"), CandidateSource(model="popular")])
