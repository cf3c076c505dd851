"""Data retention: delete what is older than the settings allow.

:func:`apply_retention` applies these limits, each off unless set (:class:`Settings`):

- ``retention_days``: events timestamped before ``now - retention_days`` are deleted;
- ``served_retention_days``: the served log's answers served before that cutoff, and
  the ``impression`` events (what the answers showed) timestamped before it;
- ``keep_versions``: the newest ``keep_versions`` model versions stay in the registry;
  older ones are forgotten (:meth:`ModelRegistry.forget`) and their artifact directories
  deleted, but only those inside ``settings.model_dir``: a path elsewhere is left where it
  is (and reported). The active version, the one a rollback returns to and versions of
  draft or running experiments are always kept;
- ``events_without_consent="discard"``: every event of the users who withhold
  personalization is deleted.

``tailored retain`` runs it once (``--dry-run`` counts without deleting); the retraining
worker (``tailored train --schedule``) runs it every round.

Examples
--------
>>> from datetime import UTC, datetime
>>> from tailored.schema import Event
>>> from tailored.settings import Settings
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> _ = store.events.add([Event(user_id="u", item_id="i", timestamp=datetime(2020, 1, 1)),
...                       Event(user_id="u", item_id="i", timestamp=datetime(2026, 1, 1))])
>>> report = apply_retention(store, Settings(retention_days=365),
...                          now=datetime(2026, 6, 1, tzinfo=UTC))
>>> report.events, store.events.count()
(1, 1)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tailored.errors import TailoredError
from tailored.settings import Settings
from tailored.store import ModelVersion, Store

#: The event type of an impression: it belongs to the served log's retention.
IMPRESSION = "impression"


@dataclass(frozen=True)
class RetentionReport:
    """What one retention run deleted (or, with ``dry_run``, would delete).

    ``events`` counts every deleted event, ``impressions`` those of them deleted under
    ``served_retention_days``; ``versions`` are the forgotten registry versions,
    ``artifacts`` the directories deleted, ``kept_artifacts`` those outside the model
    directory that were left on disk, ``kept_versions`` old versions that had to stay
    (with the reason).
    """

    dry_run: bool
    events_cutoff: datetime | None
    served_cutoff: datetime | None
    events: int = 0
    impressions: int = 0
    served: int = 0
    #: Events of users who withhold personalization (``events_without_consent="discard"``).
    without_consent: int = 0
    versions: list[int] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    kept_artifacts: list[str] = field(default_factory=list)
    kept_versions: dict[int, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Deletions per kind (for logs and metrics)."""
        return {"events": self.events, "impressions": self.impressions,
                "served": self.served, "without_consent": self.without_consent,
                "versions": len(self.versions),
                "artifacts": len(self.artifacts)}

    def summary(self) -> str:
        """One line: what was (or would be) deleted."""
        verb = "would delete" if self.dry_run else "deleted"
        counts = ", ".join(f"{n:,} {kind}" for kind, n in self.counts.items())
        return f"retention {verb}: {counts}"


def apply_retention(store: Store, settings: Settings, now: datetime | None = None, *,
                    dry_run: bool = False) -> RetentionReport:
    """Delete events, served answers and old model versions beyond the settings' limits
    (see the module docs); with ``dry_run`` count them and delete nothing."""
    now = now or datetime.now(UTC)
    events_cutoff = (None if settings.retention_days is None
                     else now - timedelta(days=settings.retention_days))
    served_cutoff = (None if settings.served_retention_days is None
                     else now - timedelta(days=settings.served_retention_days))
    events = impressions = served = 0
    if served_cutoff is not None:
        if dry_run:
            served = store.served.count_before(served_cutoff)
            impressions = store.events.count_before(served_cutoff, event_types=[IMPRESSION])
        else:
            served = store.served.delete_before(served_cutoff)
            impressions = store.events.delete_before(served_cutoff, event_types=[IMPRESSION])
    if events_cutoff is not None:
        if dry_run:
            events = store.events.count_before(events_cutoff)
            if served_cutoff is not None:  # impressions counted twice otherwise
                events -= store.events.count_before(min(events_cutoff, served_cutoff),
                                                    event_types=[IMPRESSION])
        else:
            events = store.events.delete_before(events_cutoff)
    withheld = 0
    if settings.events_without_consent == "discard":
        users = store.users.without_consent()
        withheld = (len(store.events.frame(user_ids=users)) if dry_run
                    else store.events.delete_users(users))
    report = RetentionReport(dry_run=dry_run, events_cutoff=events_cutoff,
                             served_cutoff=served_cutoff, events=events + impressions,
                             impressions=impressions, served=served,
                             without_consent=withheld)
    if settings.keep_versions is not None:
        _forget_old_versions(store, settings, settings.keep_versions, report)
    if not dry_run and any(report.counts.values()):
        store.privacy.record_retention(report.counts)  # counted in the service's metrics
    return report


def _forget_old_versions(store: Store, settings: Settings, keep: int,
                         report: RetentionReport) -> None:
    versions = store.models.list()
    old = sorted(versions, key=lambda v: v.version, reverse=True)[keep:]
    active = store.models.active()
    previous = store.models.previous()
    in_experiments: set[int | None] = set()
    for experiment in store.experiments.list():
        if experiment.status != "stopped":
            in_experiments |= {v.version for v in experiment.variants}
            in_experiments.add(experiment.holdout_version)
    model_dir = settings.model_dir.resolve()
    for version in sorted(old, key=lambda v: v.version):
        reason = ("active" if active is not None and version.version == active.version
                  else "rollback target" if previous is not None
                  and version.version == previous.version
                  else "in a draft or running experiment" if version.version in in_experiments
                  else None)
        if reason is not None:
            report.kept_versions[version.version] = reason
            continue
        if not report.dry_run:
            try:
                store.models.forget(version.version)
            except TailoredError as error:  # changed meanwhile (promoted, say)
                report.kept_versions[version.version] = str(error)
                continue
        report.versions.append(version.version)
        _remove_artifact(version, model_dir, report)


def _remove_artifact(version: ModelVersion, model_dir: Path, report: RetentionReport) -> None:
    path = Path(version.path).resolve()
    if not path.exists():
        return
    if path == model_dir or not path.is_relative_to(model_dir):
        report.kept_artifacts.append(str(path))  # never delete outside the model directory
        return
    if not report.dry_run:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    report.artifacts.append(str(path))
