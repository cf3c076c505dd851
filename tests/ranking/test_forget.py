"""Forgetting users in the ranking layer: the facts rules read, composites' parts (with
state shared with the composite, and their own sequences), and the learned ranker's
per-user tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.models import Forgetting, Recommender
from tailored.ranking import ItemTable, LearnedRanker, RuleSet, UserFactsTable, WeightedHybrid
from tailored.ranking.parts import SHARED_STATE
from tailored.testing import checkerboard
from tailored.testing.contract import FORGOTTEN, files_naming, with_user

RULES = RuleSet.from_spec([
    {"name": "berlin", "when": 'user.location == "Berlin"', "pin": ["B009"]},
    {"name": "buyers", "when": 'recent("purchase") >= 1', "bury": {"where": 'item_id == "A001"'}},
])


@pytest.fixture(scope="module")
def data() -> Dataset:
    return with_user(checkerboard())


def _facts(data: Dataset) -> tuple[UserFactsTable, ItemTable]:
    items = ItemTable.from_items(data.items, data.item_vocab.ids)
    return UserFactsTable(RULES).fit(data, items), items


def test_the_facts_forget_a_users_attributes_and_events(data: Dataset) -> None:
    facts, items = _facts(data)
    others = ["a000", "a001", "b007"]
    before = facts.facts(UserQuery(tuple(others)), items)
    forgotten = facts.facts(UserQuery((FORGOTTEN,)), items)[0]
    assert forgotten.attributes == {"location": "Berlin"} and forgotten.recent() == 5
    assert facts.forget_users([FORGOTTEN, "nobody"]) == 1
    after = facts.facts(UserQuery((FORGOTTEN, *others)), items)
    assert after[0].attributes == {} and after[0].behaviour is None
    for old, new in zip(before, after[1:], strict=True):
        assert new.attributes == old.attributes
        assert new.recent() == old.recent() and new.recent("purchase") == old.recent("purchase")
    assert FORGOTTEN not in facts.user_ids and FORGOTTEN not in facts.user_vocab
    assert len(facts.history["indptr"]) == len(facts.user_vocab) + 1


def test_the_facts_count_a_user_known_only_by_profile(data: Dataset) -> None:
    newcomer = pd.DataFrame({"user_id": ["profile-only"], "location": ["Paris"]})
    users = pd.concat([data.users, newcomer], ignore_index=True)
    facts, _ = _facts(Dataset.from_frame(data.events, items=data.items, users=users))
    assert facts.forget_users(["profile-only", "a000"]) == 2
    assert facts.forget_users(["profile-only", "a000"]) == 0


def test_forgotten_facts_round_trip_through_arrays(data: Dataset) -> None:
    facts, items = _facts(data)
    facts.forget_users([FORGOTTEN])
    restored = UserFactsTable(RULES).restore(facts.arrays(), items)
    query = UserQuery(("a000", "b003", FORGOTTEN))
    assert [f.attributes for f in restored.facts(query, items)] == [
        f.attributes for f in facts.facts(query, items)]
    assert [f.recent() for f in restored.facts(query, items)] == [
        f.recent() for f in facts.facts(query, items)]


def test_a_loaded_composite_forgets_in_parts_sharing_its_state(data: Dataset,
                                                              tmp_path: Path) -> None:
    hybrid = WeightedHybrid(parts=[
        {"model": "item2vec", "params": {"factors": 8, "epochs": 20, "min_count": 1,
                                         "sample": 0.0}},
        {"model": "segments", "params": {"n_segments": 2}}]).fit(data)
    loaded = Recommender.load(hybrid.save(tmp_path / "hybrid"))
    assert isinstance(loaded, WeightedHybrid)
    forgetting = loaded.forget_users([FORGOTTEN])
    assert forgetting == Forgetting(1, False)
    for part in loaded.parts_.models.values():
        assert all(getattr(part, name) is getattr(loaded, name) for name in SHARED_STATE)
    item2vec = next(p for p in loaded.parts_.models.values() if p.needs_sequences)
    assert len(item2vec.sequences_) == len(loaded.user_vocab_)
    assert files_naming(loaded.save(tmp_path / "after"), FORGOTTEN) == []


def test_the_ranker_drops_its_per_user_tables(data: Dataset) -> None:
    ranker = LearnedRanker(**LearnedRanker.example_params).fit(data)
    row = ranker.user_vocab_.index(FORGOTTEN)
    recent = np.delete(ranker.generator_.recent_, row, axis=0)
    stats = np.delete(ranker.features_.user_stats_, row, axis=0)
    assert FORGOTTEN in ranker.features_.user_table_ids_
    assert ranker.forget_users([FORGOTTEN]) == Forgetting(1, False)
    np.testing.assert_array_equal(ranker.generator_.recent_, recent)
    np.testing.assert_array_equal(ranker.features_.user_stats_, stats)
    assert FORGOTTEN not in ranker.features_.user_table_ids_
    assert len(ranker.features_.user_numeric_) == len(ranker.features_.user_table_ids_)
    assert all(len(source.user_vocab_) == len(ranker.user_vocab_)
               for source in ranker.generator_.parts.models.values())
