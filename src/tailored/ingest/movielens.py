"""MovieLens data sets (GroupLens, https://grouplens.org/datasets/movielens/) into the store.

Two layouts are recognised by their files:

- ML-100K: ``u.data`` (tab-separated user, item, rating, Unix time), ``u.item``
  (pipe-separated, Latin-1, 19 genre flags named in ``u.genre``) and ``u.user``
  (pipe-separated id, age, gender, occupation, zip);
- ml-latest and ml-latest-small (also ml-20m/25m/32m): ``ratings.csv``
  (userId, movieId, rating, timestamp) and ``movies.csv`` (movieId, title, genres with
  "|"); ``tags.csv`` and ``links.csv`` are not imported.

Ratings become ``rating`` events whose value is the rating and whose id is
``ml-{user}-{item}``, so importing a data set twice stores it once. Every record passes
the same validation as any imported file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from tailored.errors import InvalidDataError
from tailored.ingest.importer import ImportReport, Source, import_sources
from tailored.ingest.readers import RecordChunk
from tailored.store import Store

Layout = Literal["ml-100k", "ml-latest"]

#: ML-100K's genres in flag order, used when ``u.genre`` is absent.
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
#: The age bands MovieLens 1M publishes, as (lowest age, label).
AGE_BANDS = ((0, "Under 18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"),
             (50, "50-55"), (56, "56+"))
_NO_GENRE = {"unknown", "(no genres listed)"}  # placeholders, not genres
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_TITLE_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")

RawRow = dict[str, Any]


def age_band(age: int) -> str:
    """The MovieLens age band of ``age``.

    Examples
    --------
    >>> age_band(17), age_band(24), age_band(56)
    ('Under 18', '18-24', '56+')
    """
    label = AGE_BANDS[0][1]
    for lowest, name in AGE_BANDS:
        if age >= lowest:
            label = name
    return label


def detect_layout(directory: str | Path) -> Layout:
    """Which MovieLens layout ``directory`` holds, from the files in it."""
    directory = Path(directory)
    if (directory / "u.data").is_file():
        return "ml-100k"
    if (directory / "ratings.csv").is_file():
        return "ml-latest"
    raise InvalidDataError(
        f"{directory}: no MovieLens ratings found; expected u.data (ML-100K) or ratings.csv "
        "(ml-latest, ml-latest-small, ml-25m); download and unzip a data set from "
        "https://grouplens.org/datasets/movielens/ and pass its directory")


def import_movielens(store: Store, directory: str | Path, *, chunk_rows: int = 50_000,
                     ) -> list[ImportReport]:
    """Import a MovieLens directory: ratings as events, movies as items, users (100K).

    Parameters
    ----------
    store : Store
        Where the records go.
    directory : str or Path
        An unzipped MovieLens data set (ML-100K or the ml-latest family).
    chunk_rows : int, default 50_000
        Rows read, validated and written at a time.

    Returns
    -------
    list of ImportReport
        One per file imported: ratings first, then movies, then users (ML-100K only).

    Raises
    ------
    InvalidDataError
        The directory holds no known layout, or some row is invalid; then nothing was
        imported.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from tailored.store import open_store
    >>> directory = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (directory / "ratings.csv").write_text(
    ...     "userId,movieId,rating,timestamp\\n1,1,4.0,964982703\\n")
    >>> _ = (directory / "movies.csv").write_text(
    ...     "movieId,title,genres\\n1,Toy Story (1995),Animation|Comedy\\n")
    >>> store = open_store("sqlite://")
    >>> [r.imported for r in import_movielens(store, directory)]
    [1, 1]
    >>> item = store.items.get("1")
    >>> item.categories, item.attributes
    (['Animation', 'Comedy'], {'year': 1995})
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    directory = Path(directory)
    layout = detect_layout(directory)
    if layout == "ml-100k":
        sources = _ml_100k_sources(directory, chunk_rows)
    else:
        sources = _ml_latest_sources(directory, chunk_rows)
    return import_sources(store, sources)


def _first_line(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, newline="") as stream:
        return stream.readline().rstrip("\r\n")


def _starts_with_header(path: Path, separator: str, encoding: str) -> bool:
    # Some redistributed copies of ML-100K add a header line; real rows start with an id.
    first = _first_line(path, encoding).split(separator, 1)[0]
    return not first.strip().isdigit()


def _table(path: Path, names: list[str], to_raw: Callable[..., RawRow], *,
           separator: str, encoding: str, header: bool, chunk_rows: int,
           ) -> Iterator[RecordChunk]:
    """Chunks of a headerless (or header-skipped) delimited MovieLens file.

    ``to_raw`` takes one row's cells as positional arguments, in ``names`` order.
    """
    line = 1 if header else 0
    try:
        with pd.read_csv(
            path, sep=separator, header=None, names=names, skiprows=1 if header else 0,
            dtype=object, keep_default_na=False, na_values=[""], encoding=encoding,
            chunksize=chunk_rows,
            # ML-100K titles hold bare quotes; only the comma-separated files quote fields.
            quoting=csv.QUOTE_MINIMAL if separator == "," else csv.QUOTE_NONE,
        ) as reader:
            for frame in reader:
                columns = (frame[name].where(frame[name].notna(), "").tolist()
                           for name in names)
                raws = list(map(to_raw, *columns))
                yield RecordChunk(path, "movielens",
                                  list(zip(range(line + 1, line + 1 + len(raws)), raws,
                                           strict=True)), text=True)
                line += len(raws)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InvalidDataError(
            f"{path}: cannot be read as MovieLens's {path.name} ({error}); use the files of "
            "the data set as GroupLens publishes them") from None


def _rating(user: str, item: str, rating: str, timestamp: str) -> RawRow:
    return {"event_id": f"ml-{user}-{item}", "user_id": user, "item_id": item,
            "event_type": "rating", "value": rating or None, "timestamp": timestamp or None}


def _title_year(title: str) -> int | None:
    found = _TITLE_YEAR.search(title)
    return int(found.group(1)) if found else None


def _release_date(text: str) -> datetime | None:
    """ML-100K writes dates as "01-Jan-1995"."""
    parts = text.strip().split("-")
    if len(parts) != 3 or parts[1].lower() not in _MONTHS:
        return None
    try:
        return datetime(int(parts[2]), _MONTHS[parts[1].lower()], int(parts[0]), tzinfo=UTC)
    except ValueError:
        return None


def _ml_100k_genres(directory: Path) -> list[str]:
    path = directory / "u.genre"
    if not path.is_file():
        return list(ML_100K_GENRES)
    numbered = []
    for line in path.read_text(encoding="latin-1").splitlines():
        name, _, number = line.strip().rpartition("|")
        if name and number.isdigit():
            numbered.append((int(number), name))
    return [name for _, name in sorted(numbered)]


def _ml_100k_sources(directory: Path, chunk_rows: int) -> list[Source]:
    ratings = directory / "u.data"
    sources = [Source(ratings, "events", lambda: _table(
        ratings, ["user_id", "item_id", "rating", "timestamp"], _rating, separator="\t",
        encoding="utf-8", header=_starts_with_header(ratings, "\t", "utf-8"),
        chunk_rows=chunk_rows))]

    movies = directory / "u.item"
    if movies.is_file():
        genres = _ml_100k_genres(directory)
        header = _starts_with_header(movies, "|", "latin-1")
        fields = _first_line(movies, "latin-1").count("|") + 1
        if fields != 5 + len(genres):
            raise InvalidDataError(
                f"{movies}:1: {fields} fields, but ML-100K has 5 plus one flag for each of "
                f"the {len(genres)} genres in u.genre; use the files of one data set")
        names = ["item_id", "title", "release_date", "video_release_date", "imdb_url",
                 *(f"genre:{name}" for name in genres)]

        def movie(item_id: str, title: str, release_date: str, _video_release_date: str,
                  imdb_url: str, *genre_flags: str) -> RawRow:
            released = _release_date(release_date)
            # The title's year is the film's; the release date is often a later video one.
            year = _title_year(title) or (released.year if released else None)
            attributes: dict[str, Any] = {}
            if year is not None:
                attributes["year"] = year
            if released is not None:
                attributes["release_date"] = released.date().isoformat()
            if imdb_url:
                attributes["imdb_url"] = imdb_url
            return {
                "item_id": item_id, "title": title,
                "categories": [name for name, flag in zip(genres, genre_flags, strict=True)
                               if flag == "1" and name not in _NO_GENRE],
                "attributes": attributes, "created_at": released,
            }

        sources.append(Source(movies, "items", lambda: _table(
            movies, names, movie, separator="|", encoding="latin-1", header=header,
            chunk_rows=chunk_rows)))

    users = directory / "u.user"
    if users.is_file():
        sources.append(Source(users, "users", lambda: _table(
            users, ["user_id", "age", "gender", "occupation", "zip"], _ml_100k_user,
            separator="|", encoding="latin-1",
            header=_starts_with_header(users, "|", "latin-1"), chunk_rows=chunk_rows)))
    return sources


def _ml_100k_user(user_id: str, age: str, gender: str, occupation: str, zip_code: str,
                  ) -> RawRow:
    attributes: dict[str, Any] = {}
    if age.strip().isdigit():
        attributes["age"] = int(age)
        attributes["age_band"] = age_band(int(age))
    elif age:
        attributes["age"] = age  # kept as given rather than lost
    # zip stays text: "02139" is a code, not a number.
    for name, value in (("gender", gender), ("occupation", occupation), ("zip", zip_code)):
        if value:
            attributes[name] = value
    return {"user_id": user_id, "attributes": attributes}


def _check_header(path: Path, expected: list[str]) -> None:
    found = next(csv.reader([_first_line(path, "utf-8-sig")]))
    if found[: len(expected)] != expected:
        raise InvalidDataError(
            f"{path}:1: header {','.join(found)!r} is not MovieLens's "
            f"{','.join(expected)!r}; use the files of one ml-latest data set")


def _ml_latest_sources(directory: Path, chunk_rows: int) -> list[Source]:
    ratings = directory / "ratings.csv"
    _check_header(ratings, ["userId", "movieId", "rating", "timestamp"])
    sources = [Source(ratings, "events", lambda: _table(
        ratings, ["user_id", "item_id", "rating", "timestamp"], _rating, separator=",",
        encoding="utf-8-sig", header=True, chunk_rows=chunk_rows))]

    movies = directory / "movies.csv"
    if movies.is_file():
        _check_header(movies, ["movieId", "title", "genres"])
        sources.append(Source(movies, "items", lambda: _table(
            movies, ["item_id", "title", "genres"], _ml_latest_movie, separator=",",
            encoding="utf-8-sig", header=True, chunk_rows=chunk_rows)))
    return sources


def _ml_latest_movie(item_id: str, title: str, genres: str) -> RawRow:
    title = title.strip()
    year = _title_year(title)
    return {
        "item_id": item_id, "title": title,
        "categories": [g for g in genres.split("|") if g and g not in _NO_GENRE],
        "attributes": {} if year is None else {"year": year},
    }
