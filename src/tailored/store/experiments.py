"""The experiments role of the store: A/B tests, their variants and their life cycle.

An experiment is created as a ``draft``, ``start``-ed (``running``: the service assigns
users to its variants) and ``stop``-ped (``stopped``: served as before, kept for its
analysis). An experiment runs on one placement (``placement``; None: the lists asked
without one), and at most one runs per placement at a time. Users are assigned by a hash
of the experiment and the user, so experiments on different placements run at once with
independent assignments (layers): a user may be in one test on the homepage and in
another on the product page.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from tailored.errors import InvalidDataError, NotFoundError
from tailored.store.sqlbase import SqlTables, from_micros, metadata, micros

ExperimentStatus = Literal["draft", "running", "stopped"]

#: The variant name holdout users are reported under.
HOLDOUT = "holdout"

experiments_table = sa.Table(
    "experiments", metadata,
    sa.Column("experiment_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("variants", sa.Text, nullable=False),
    sa.Column("holdout_share", sa.Float, nullable=False, default=0.0),
    sa.Column("holdout_version", sa.BigInteger, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, default="draft"),
    sa.Column("planned_sample_size", sa.BigInteger, nullable=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("started_us", sa.BigInteger, nullable=True),
    sa.Column("stopped_us", sa.BigInteger, nullable=True),
    sa.Column("placement", sa.String(64), nullable=True),
)


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: a registered model (or recipe) version and its traffic.

    ``share`` is the fraction of the experiment's non-holdout users it gets; the shares
    of an experiment's variants sum to 1.
    """

    name: str
    version: int
    share: float


@dataclass(frozen=True)
class Experiment:
    """An A/B test as stored. The first variant is the control.

    ``holdout_share`` of all users are held out: they get ``holdout_version`` (e.g. a
    ``popular`` model, the non-personalised baseline) or, when it is ``None``, an
    empty list of recommendations. ``planned_sample_size`` is the number of
    impressions per variant the test was sized for (see
    :func:`tailored.monitoring.abtest.sample_size`); the analysis reports how much of
    it is reached, so nobody calls a winner early.
    """

    experiment_id: str
    name: str
    variants: tuple[Variant, ...]
    status: ExperimentStatus = "draft"
    holdout_share: float = 0.0
    holdout_version: int | None = None
    planned_sample_size: int | None = None
    description: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    placement: str | None = None

    @property
    def control(self) -> Variant:
        return self.variants[0]

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO-8601 strings."""
        data = asdict(self)
        for key in ("created_at", "started_at", "stopped_at"):
            value = data[key]
            data[key] = None if value is None else value.isoformat()
        return data


def validated_variants(variants: list[tuple[str, int, float]]) -> tuple[Variant, ...]:
    """Variants from ``(name, version, share)``; shares are normalised to sum to 1.

    Examples
    --------
    >>> validated_variants([("A", 1, 1.0), ("B", 2, 1.0)])
    (Variant(name='A', version=1, share=0.5), Variant(name='B', version=2, share=0.5))
    """
    if len(variants) < 2:
        raise InvalidDataError(
            f"an experiment needs at least two variants (a control and a challenger), got "
            f"{len(variants)}; pass e.g. --variant A=1 --variant B=2")
    names = [name for name, _, _ in variants]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidDataError(f"variant names must be unique, {duplicated} repeat")
    for name, version, share in variants:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise InvalidDataError(
                f"variant name {name!r} must be letters, digits, '-' or '_'")
        if name == HOLDOUT:
            raise InvalidDataError(f"{HOLDOUT!r} is reserved for held-out users; rename the "
                                   "variant")
        if not isinstance(version, int) or version < 1:
            raise InvalidDataError(f"variant {name!r}: version must be a registered model "
                                   f"version (an integer >= 1), got {version!r}")
        if not (math.isfinite(share) and share > 0):
            raise InvalidDataError(f"variant {name!r}: traffic share must be > 0, got {share}")
    total = sum(share for _, _, share in variants)
    return tuple(Variant(name, version, share / total) for name, version, share in variants)


class SqlExperiments(SqlTables):
    """Experiments in the ``experiments`` table."""

    def create(self, name: str, variants: list[tuple[str, int, float]], *,
               holdout_share: float = 0.0, holdout_version: int | None = None,
               planned_sample_size: int | None = None, description: str = "",
               experiment_id: str | None = None, placement: str | None = None
               ) -> Experiment:
        """Store a new experiment as a draft; nothing is served differently until start.
        ``placement``: the lists it runs on (None: those asked without a placement)."""
        checked = validated_variants(variants)
        if not name.strip():
            raise InvalidDataError("an experiment needs a name, e.g. 'als-vs-popular'")
        if not (0.0 <= holdout_share < 1.0):
            raise InvalidDataError(f"holdout share must be in [0, 1), got {holdout_share}")
        if planned_sample_size is not None and planned_sample_size < 1:
            raise InvalidDataError(
                f"planned sample size must be >= 1 impression per variant, got "
                f"{planned_sample_size}")
        experiment = Experiment(
            experiment_id=experiment_id or uuid.uuid4().hex[:12], name=name.strip(),
            variants=checked, holdout_share=float(holdout_share),
            holdout_version=holdout_version, planned_sample_size=planned_sample_size,
            description=description, placement=placement)
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(experiments_table.c.experiment_id).where(
                experiments_table.c.experiment_id == experiment.experiment_id)).first()
            if exists is not None:
                raise InvalidDataError(
                    f"experiment {experiment.experiment_id!r} exists already; pick another id")
            conn.execute(experiments_table.insert().values(
                experiment_id=experiment.experiment_id, name=experiment.name,
                variants=json.dumps([asdict(v) for v in checked]),
                holdout_share=experiment.holdout_share, holdout_version=holdout_version,
                status="draft", planned_sample_size=planned_sample_size,
                description=description, created_us=micros(experiment.created_at),
                placement=placement))
        found = self.get(experiment.experiment_id)
        assert found is not None
        return found

    def get(self, experiment_id: str) -> Experiment | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(experiments_table).where(
                experiments_table.c.experiment_id == experiment_id)).first()
        return None if row is None else self._experiment(row)

    def list(self, status: ExperimentStatus | None = None) -> list[Experiment]:
        """Experiments, oldest first; only those with ``status`` when given."""
        query = sa.select(experiments_table).order_by(experiments_table.c.created_us,
                                                      experiments_table.c.experiment_id)
        if status is not None:
            query = query.where(experiments_table.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._experiment(row) for row in rows]

    def running(self, placement: str | None = None) -> Experiment | None:
        """The experiment running now on ``placement`` (None: lists without one), if any."""
        found = [e for e in self.list("running") if e.placement == placement]
        return found[0] if found else None

    def start(self, experiment_id: str, at: datetime | None = None) -> Experiment:
        """Start a draft; refused while another experiment runs (a user is in one test)."""
        when = micros(at or datetime.now(UTC))
        with self.engine.begin() as conn:
            experiment = self._require(conn, experiment_id)
            if experiment.status != "draft":
                raise InvalidDataError(
                    f"experiment {experiment_id!r} is {experiment.status}; only a draft can "
                    "start (create a new experiment to run it again)")
            same_placement = (experiments_table.c.placement.is_(None)
                              if experiment.placement is None
                              else experiments_table.c.placement == experiment.placement)
            other = conn.execute(sa.select(experiments_table.c.experiment_id).where(
                experiments_table.c.status == "running", same_placement)).first()
            if other is not None:
                where = ("lists without a placement" if experiment.placement is None
                         else f"placement {experiment.placement!r}")
                raise InvalidDataError(
                    f"experiment {other.experiment_id!r} is running on {where}; stop it "
                    f"first (`tailored experiments stop {other.experiment_id}`): one "
                    "experiment runs per placement at a time")
            conn.execute(experiments_table.update().where(
                experiments_table.c.experiment_id == experiment_id).values(
                    status="running", started_us=when))
        return self._get(experiment_id)

    def stop(self, experiment_id: str, at: datetime | None = None) -> Experiment:
        """Stop a running experiment; its data stays for the analysis."""
        when = micros(at or datetime.now(UTC))
        with self.engine.begin() as conn:
            experiment = self._require(conn, experiment_id)
            if experiment.status != "running":
                raise InvalidDataError(
                    f"experiment {experiment_id!r} is {experiment.status}, not running; "
                    "nothing to stop")
            conn.execute(experiments_table.update().where(
                experiments_table.c.experiment_id == experiment_id).values(
                    status="stopped", stopped_us=when))
        return self._get(experiment_id)

    def _get(self, experiment_id: str) -> Experiment:
        found = self.get(experiment_id)
        assert found is not None
        return found

    def _require(self, conn: sa.Connection, experiment_id: str) -> Experiment:
        row = conn.execute(sa.select(experiments_table).where(
            experiments_table.c.experiment_id == experiment_id)).first()
        if row is None:
            raise NotFoundError(f"no experiment {experiment_id!r}; `tailored experiments "
                                "list` shows the experiments there are")
        return self._experiment(row)

    @staticmethod
    def _experiment(row: Any) -> Experiment:
        return Experiment(
            experiment_id=row.experiment_id, name=row.name,
            variants=tuple(Variant(**v) for v in json.loads(row.variants)),
            status=row.status, holdout_share=float(row.holdout_share),
            holdout_version=row.holdout_version,
            planned_sample_size=row.planned_sample_size, description=row.description,
            created_at=from_micros(row.created_us),
            started_at=None if row.started_us is None else from_micros(row.started_us),
            stopped_at=None if row.stopped_us is None else from_micros(row.stopped_us),
            placement=row.placement,
        )
