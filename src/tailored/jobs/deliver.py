"""Batch delivery: every user's list for a placement written to a file, for channels that
are not a page (a weekly email, push notifications), on demand or on a schedule.

``deliver`` runs the placement's pipeline (its version, filter, boosts, knobs and ``k``)
for users in the store, from their current histories, writes CSV, Parquet or JSON lines
(by the file's suffix; JSON lines hold one user per line with their items), and tells
webhook subscribers (``recommendations.ready``) where the file is. ``deliver_every``
repeats it on an interval, naming each file by the time it was made.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from tailored.errors import InvalidDataError, NotFoundError
from tailored.jobs.webhooks import notify as tell
from tailored.pipeline import NO_OVERRIDES, LiveRecommender, Overrides, Pipeline, Placement
from tailored.pipeline.live import registered_version
from tailored.pipeline.placement import stored_placement
from tailored.store import Store

logger = logging.getLogger("tailored.jobs")

#: The formats a batch is written in, by the output file's suffix.
FORMATS = (".csv", ".parquet", ".jsonl")


@dataclass(frozen=True)
class Delivery:
    """A batch written: where, for which placement, how many lists and rows."""

    path: Path
    placement: str | None
    users: int
    rows: int
    written_at: datetime

    def payload(self) -> dict[str, object]:
        """What the ``recommendations.ready`` webhook tells."""
        return {"placement": self.placement, "path": str(self.path.resolve()),
                "users": self.users, "rows": self.rows,
                "written_at": self.written_at.isoformat()}


def placed(store: Store, placement: str | None) -> tuple[LiveRecommender, Placement]:
    """The recommender and the configuration of a stored ``placement`` (None: the
    serving version without one)."""
    spec = Placement()
    if placement is not None:
        stored = store.placements.get(placement)
        if stored is None:
            raise NotFoundError(f"no placement named {placement!r}; `tailored placements "
                                "list` shows them")
        spec = stored_placement(stored)
    if spec.model is None:
        return LiveRecommender.active(store), spec
    version = registered_version(store, spec.model)
    return LiveRecommender(store, Pipeline.load(Path(version.path)), version), spec


def recommend_placed(store: Store, user_ids: Sequence[str], placement: str | None = None, *,
                     k: int | None = None, overrides: Overrides = NO_OVERRIDES,
                     explain: bool = False) -> pd.DataFrame:
    """Each user's list through ``placement`` (narrowed by ``overrides``), as
    :meth:`LiveRecommender.recommend` gives it."""
    live, spec = placed(store, placement)
    return live.recommend(list(user_ids), k or spec.k, spec.overrides(overrides),
                          explain=explain)


def write_recommendations(lists: pd.DataFrame, path: Path) -> None:
    """``lists`` (``user_id``, ``item_id``, ``score``, ``rank``...) as CSV, Parquet or
    JSON lines, by ``path``'s suffix."""
    _check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        lists.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        lists.to_csv(path, index=False)
    else:
        with path.open("w", encoding="utf-8") as out:
            for user_id, rows in lists.groupby("user_id", sort=False):
                items = rows.drop(columns="user_id").to_dict("records")
                out.write(json.dumps({"user_id": user_id, "items": items}, default=str) + "\n")


def _check_format(path: Path) -> None:
    if path.suffix not in FORMATS:
        raise InvalidDataError(f"cannot write {path.name}: give a file ending in "
                               f"{', '.join(FORMATS)}")


def deliver(store: Store, placement: str | None, output: Path, *,
            users: Sequence[str] | None = None, notify: bool = True,
            now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Delivery:
    """Write the lists of ``users`` (default: every user with events) for ``placement``
    to ``output`` and, with ``notify``, tell the ``recommendations.ready`` webhooks."""
    _check_format(output)  # before the lists are made
    ids = (list(users) if users is not None
           else store.events.frame()["user_id"].astype(str).unique().tolist())
    lists = recommend_placed(store, ids, placement)
    write_recommendations(lists, output)
    delivery = Delivery(output, placement, len(ids), len(lists), now())
    if notify:
        tell(store, "recommendations.ready", delivery.payload())
    logger.info("wrote %d recommendations for %d users to %s", delivery.rows,
                delivery.users, output)
    return delivery


def deliver_every(store: Store, placement: str | None, output: Path, interval: timedelta, *,
                  runs: int | None = None, notify: bool = True,
                  sleep: Callable[[float], None] = time.sleep,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC),
                  done: Callable[[Delivery], None] = lambda _: None) -> list[Delivery]:
    """:func:`deliver` every ``interval`` (``runs`` times, or until stopped); each file is
    ``output`` with the time inserted before its suffix (``weekly-20261206T0800.jsonl``)."""
    if interval.total_seconds() <= 0:
        raise InvalidDataError(f"the interval must be positive, got {interval}")
    made: list[Delivery] = []
    while runs is None or len(made) < runs:
        started = now()
        path = output.with_name(f"{output.stem}-{started:%Y%m%dT%H%M%S}{output.suffix}")
        made.append(deliver(store, placement, path, notify=notify, now=now))
        done(made[-1])
        if runs is not None and len(made) >= runs:
            break
        sleep(max(0.0, (started + interval - now()).total_seconds()))
    return made


__all__ = ["FORMATS", "Delivery", "deliver", "deliver_every", "placed", "recommend_placed",
           "write_recommendations"]
