"""Erasure of users (the right to be forgotten): ``POST /users/{user_id}/erase`` and
``tailored users erase``.

In this order, so that no step can bring the user back:

1. every registered model artifact on disk is rewritten without the users' rows (user
   vocabularies, user factors, user-item matrices, sequences, rule facts), and item-level
   state is recomputed where the family allows it exactly (popularity counts);
2. one store transaction deletes every row naming the users (events, profile, consent
   history, served answers and experiment exposures) and writes one audit record per
   user that names them by a keyed hash only. A serving process reloads the rewritten
   artifacts and empties its cache when it sees a new audit record: at once where the
   erasure was asked, within the registry poll elsewhere
   (:class:`~tailored.serving.state.ServiceState`).

Where a model's item-level state (item factors, similarities learned by optimisation,
the ranker's trees) still carries the users' influence, the audit record is *pending*
until a retraining replaces the serving model, within ``erasure_retrain_hours``: the
scheduled worker retrains for it (:func:`tailored.jobs.retrain.run_worker`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tailored.models.base import Forgetting
from tailored.pipeline import forget_in_artifact
from tailored.settings import Settings
from tailored.store import Erasure, Store, stored_user_id


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure did."""

    erasures: list[Erasure]
    #: Per registered version: how many of the users it held, and whether nothing they
    #: shaped is left in it.
    versions: dict[int, Forgetting]
    seconds: float

    @property
    def deleted(self) -> dict[str, int]:
        """Rows deleted, by table, over every user."""
        total: dict[str, int] = {}
        for erasure in self.erasures:
            for table, count in erasure.deleted.items():
                total[table] = total.get(table, 0) + count
        return total

    @property
    def retrain_due(self) -> datetime | None:
        """When a retraining must have replaced the models still carrying the users."""
        return next((e.retrain_due for e in self.erasures if e.pending), None)

    def summary(self) -> dict[str, object]:
        """The report as JSON-ready fields (the REST answer, the CLI's output)."""
        return {
            "erased": len(self.erasures),
            "deleted": self.deleted,
            "models": {str(version): {"users": f.known, "exact": f.exact}
                       for version, f in sorted(self.versions.items())},
            "retrain_due": None if self.retrain_due is None else self.retrain_due.isoformat(),
            "audit": [{"erasure_id": e.erasure_id, "user_hash": e.user_hash}
                      for e in self.erasures],
            "seconds": round(self.seconds, 4),
        }


def audit_key(store: Store, settings: Settings) -> str:
    """The key of the audit hashes: ``privacy_secret`` when set, else the store's own."""
    if settings.privacy_secret is not None:
        return settings.privacy_secret.get_secret_value()
    return store.privacy.audit_key()


def erase_users(store: Store, settings: Settings, user_ids: Sequence[str], *,
                erased_by: str) -> ErasureReport:
    """Erase ``user_ids`` from the store and every registered artifact (see the module's
    docstring)."""
    started = time.perf_counter()
    users = list(dict.fromkeys(user_ids))
    stored = [stored_user_id(store, user) for user in users]  # as the artifacts name them
    versions = {version.version: forget_in_artifact(Path(version.path), stored)
                for version in store.models.list() if Path(version.path).is_dir()}
    inexact = any(f.known and not f.exact for f in versions.values())
    within = timedelta(hours=settings.erasure_retrain_hours) if inexact else None
    erasures = store.privacy.erase(users, key=audit_key(store, settings),
                                   erased_by=erased_by, retrain_within=within)
    return ErasureReport(erasures, versions, time.perf_counter() - started)


def was_erased(store: Store, settings: Settings, user_id: str) -> list[Erasure]:
    """The audit records of ``user_id`` (found by its keyed hash), newest first."""
    return store.privacy.erasures_of(user_id, key=audit_key(store, settings))


__all__ = ["ErasureReport", "audit_key", "erase_users", "was_erased"]
