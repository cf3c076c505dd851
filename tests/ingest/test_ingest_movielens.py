"""MovieLens layouts: the real ML-100K and a tiny ml-latest-small."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.ingest import import_movielens
from tailored.ingest.movielens import age_band, detect_layout
from tailored.store import Store

ML_100K = Path(__file__).parents[3] / "shared" / "data" / "ml-100k"
needs_ml_100k = pytest.mark.skipif(not (ML_100K / "u.data").is_file(),
                                   reason="MovieLens 100K is not in ../shared/data")


@needs_ml_100k
def test_ml_100k_imports_every_rating_movie_and_user(store: Store) -> None:
    reports = import_movielens(store, ML_100K)

    assert [(r.path.name, r.kind, r.rows_read, r.imported, r.rejected) for r in reports] == [
        ("u.data", "events", 100_000, 100_000, 0),
        ("u.item", "items", 1_682, 1_682, 0),
        ("u.user", "users", 943, 943, 0),
    ]
    assert (store.events.count(), store.items.count(), store.users.count()) == (
        100_000, 1_682, 943)

    toy_story = store.items.get("1")
    assert toy_story is not None
    assert toy_story.title == "Toy Story (1995)"
    assert {"Animation", "Children's", "Comedy"} <= set(toy_story.categories)
    assert toy_story.attributes["year"] == 1995
    assert toy_story.created_at == datetime(1995, 1, 1, tzinfo=UTC)
    # Titles are Latin-1 in the file.
    miserables = store.items.get("543")
    assert miserables is not None and miserables.title == "Misérables, Les (1995)"

    user = store.users.get("1")
    assert user is not None
    assert user.attributes == {"age": 24, "age_band": "18-24", "gender": "M",
                               "occupation": "technician", "zip": "85711"}

    # The first line of u.data: user 196 rated item 242 a 3 at Unix time 881250949.
    first = store.events.frame(user_ids=["196"]).set_index("event_id").loc["ml-196-242"]
    assert (first["item_id"], first["event_type"], first["value"]) == ("242", "rating", 3.0)
    assert first["timestamp"].timestamp() == 881250949


@needs_ml_100k
def test_ml_100k_imported_twice_is_stored_once(store: Store, tmp_path: Path) -> None:
    # Only the ratings, to keep the test quick.
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    lines = (ML_100K / "u.data").read_text().splitlines()[:2_000]
    (directory / "u.data").write_text("\n".join(lines) + "\n")

    first, = import_movielens(store, directory)
    second, = import_movielens(store, directory)

    assert (first.imported, second.imported, second.duplicates) == (2_000, 0, 2_000)
    assert store.events.count() == 2_000


def test_ml_latest_small_layout(store: Store, data_dir: Path) -> None:
    reports = import_movielens(store, data_dir / "ml-latest-small")

    assert [(r.path.name, r.kind, r.imported) for r in reports] == [
        ("ratings.csv", "events", 6), ("movies.csv", "items", 5)]
    assert store.users.count() == 0  # ml-latest has no user table
    frame = store.events.frame()
    assert set(frame["event_id"]) == {"ml-1-1", "ml-1-3", "ml-1-6", "ml-2-1", "ml-2-318",
                                      "ml-3-6"}
    assert set(frame["event_type"]) == {"rating"}
    half_star = frame.set_index("event_id").loc["ml-3-6"]
    assert half_star["value"] == 0.5
    assert half_star["timestamp"].timestamp() == 1306463578

    shawshank = store.items.get("318")
    assert shawshank is not None
    assert shawshank.title == "Shawshank Redemption, The (1994)"  # a quoted comma
    assert shawshank.categories == ["Crime", "Drama"]
    assert shawshank.attributes == {"year": 1994}
    untitled = store.items.get("999")
    assert untitled is not None
    assert (untitled.categories, untitled.attributes) == ([], {})


def test_a_bad_rating_imports_nothing_from_the_directory(store: Store, data_dir: Path,
                                                         tmp_path: Path) -> None:
    directory = tmp_path / "ml"
    shutil.copytree(data_dir / "ml-latest-small", directory)
    with (directory / "ratings.csv").open("a") as stream:
        stream.write("4,1,five,1306463578\n")

    with pytest.raises(InvalidDataError, match=r"ratings\.csv:8: field 'value': 'five' is not "
                                               r"a number"):
        import_movielens(store, directory)

    assert (store.events.count(), store.items.count()) == (0, 0)


def test_a_directory_without_movielens_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidDataError, match=r"no MovieLens ratings found; expected u\.data"):
        detect_layout(tmp_path)


def test_age_bands_follow_movielens() -> None:
    assert [age_band(a) for a in (7, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73)] == [
        "Under 18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44", "45-49", "45-49",
        "50-55", "50-55", "56+", "56+"]


def test_a_short_rating_line_is_a_reject_not_a_crash(store: Store, data_dir: Path,
                                                     tmp_path: Path) -> None:
    directory = tmp_path / "ml"
    shutil.copytree(data_dir / "ml-latest-small", directory)
    with (directory / "ratings.csv").open("a") as stream:
        stream.write("4,1,3.0\n")  # no timestamp

    with pytest.raises(InvalidDataError, match=r"ratings\.csv:8: field 'timestamp': is missing"):
        import_movielens(store, directory)

    assert store.events.count() == 0
