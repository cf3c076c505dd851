"""Forgetting users in a pipeline (scorer and the facts its rules read) and in saved
artifacts on disk (``forget_in_artifact``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailored.dataset import Dataset
from tailored.models import ALS, Forgetting, ItemKNN, Recommender
from tailored.pipeline import Pipeline, forget_in_artifact
from tailored.testing import checkerboard
from tailored.testing.contract import FORGOTTEN, files_naming, with_user

RULES = [
    {"name": "berlin", "when": 'user.location == "Berlin"', "pin": ["B009"]},
    {"name": "buyers", "when": 'recent("purchase") >= 1', "bury": {"where": 'item_id == "A001"'}},
]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return with_user(checkerboard())


@pytest.fixture
def pipeline(data: Dataset) -> Pipeline:
    return Pipeline(ItemKNN(), name="knn", rules=RULES).fit(data)


def _lists(pipeline: Pipeline, user: str) -> list[str]:
    return pipeline.run(user, k=5)["item_id"].tolist()


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(path.relative_to(directory)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}


def test_a_forgotten_user_gets_a_strangers_list(pipeline: Pipeline, tmp_path: Path) -> None:
    assert _lists(pipeline, FORGOTTEN)[0] == "B009"  # Berlin, from the users table
    assert files_naming(pipeline.save(tmp_path / "before"), FORGOTTEN)
    assert pipeline.forget_users([FORGOTTEN, "nobody"]) == Forgetting(1, True)
    assert _lists(pipeline, FORGOTTEN) == _lists(pipeline, "never-seen")
    assert files_naming(pipeline.save(tmp_path / "after"), FORGOTTEN) == []
    loaded = Pipeline.load(tmp_path / "after")
    assert _lists(loaded, FORGOTTEN) == _lists(pipeline, FORGOTTEN)
    assert _lists(loaded, "a003") == _lists(pipeline, "a003")


def test_known_counts_users_the_scorer_or_the_facts_held(data: Dataset) -> None:
    newcomer = pd.DataFrame({"user_id": ["profile-only"], "taste": ["likes-b"],
                             "location": ["Paris"]})
    data = Dataset.from_frame(data.events, items=data.items,
                              users=pd.concat([data.users, newcomer], ignore_index=True))
    pipeline = Pipeline(ALS(factors=2, iterations=5), rules=RULES).fit(data)
    forgetting = pipeline.forget_users(["profile-only", FORGOTTEN, "nobody"])
    assert forgetting == Forgetting(2, False)
    assert pipeline.forget_users(["profile-only", FORGOTTEN]) == Forgetting(0, True)


def test_forgetting_rewrites_a_pipeline_artifact(pipeline: Pipeline, tmp_path: Path) -> None:
    directory = pipeline.save(tmp_path / "models" / "knn")
    directory.chmod(0o755)
    assert forget_in_artifact(directory, [FORGOTTEN]) == Forgetting(1, True)
    assert files_naming(directory, FORGOTTEN) == []
    assert sorted(p.name for p in directory.parent.iterdir()) == ["knn"]  # nothing left over
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "config.json",
                                                            "scorer"]
    assert directory.stat().st_mode & 0o777 == 0o755
    assert json.loads((directory / "config.json").read_text())["kind"] == "pipeline"
    loaded = Pipeline.load(directory)
    assert loaded.rules.to_spec() == pipeline.rules.to_spec()
    assert FORGOTTEN not in loaded.scorer.user_vocab_ and len(loaded.facts_.user_vocab)


def test_a_bare_model_artifact_stays_a_bare_model(data: Dataset, tmp_path: Path) -> None:
    directory = ALS(factors=2, iterations=5).fit(data).save(tmp_path / "als")
    assert forget_in_artifact(directory, FORGOTTEN) == Forgetting(1, False)
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "config.json"]
    assert files_naming(directory, FORGOTTEN) == []
    assert FORGOTTEN not in Recommender.load(directory).user_vocab_


def test_strangers_leave_the_artifact_untouched(pipeline: Pipeline, tmp_path: Path) -> None:
    directory = pipeline.save(tmp_path / "knn")
    before, inode = _snapshot(directory), directory.stat().st_ino
    assert forget_in_artifact(directory, ["nobody", "a000-but-not-quite"]) == Forgetting(0, True)
    assert _snapshot(directory) == before and directory.stat().st_ino == inode


def test_leftovers_of_an_interrupted_rewrite_are_deleted(pipeline: Pipeline,
                                                          tmp_path: Path) -> None:
    directory = pipeline.save(tmp_path / "knn")
    for leftover in ("knn.old-0123abcd", ".knn.new-x1y2"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "arrays.npz").write_text(FORGOTTEN)
    (tmp_path / "knn.old-kept").mkdir()  # not a name a rewrite gives
    forget_in_artifact(directory, ["nobody"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knn", "knn.old-kept"]


def test_a_failed_rewrite_keeps_the_old_artifact(pipeline: Pipeline, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    directory = pipeline.save(tmp_path / "knn")
    before = _snapshot(directory)

    def broken_save(self: Pipeline, path: str | Path) -> Path:
        Path(path, "arrays.npz").write_text("half written")
        raise OSError("disk full")

    monkeypatch.setattr(Pipeline, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        forget_in_artifact(directory, [FORGOTTEN])
    assert _snapshot(directory) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knn"]


def test_the_pipeline_lists_every_user_it_holds(data: Dataset) -> None:
    newcomer = pd.DataFrame({"user_id": ["profile-only"], "taste": ["likes-b"],
                             "location": ["Paris"]})
    data = Dataset.from_frame(data.events, items=data.items,
                              users=pd.concat([data.users, newcomer], ignore_index=True))
    pipeline = Pipeline(ALS(factors=2, iterations=5), rules=RULES).fit(data)
    assert pipeline.user_ids.tolist() == sorted([*data.user_vocab.ids, "profile-only"])
    pipeline.forget_users(pipeline.user_ids[:3].tolist())
    assert len(pipeline.user_ids) == data.n_users - 2
