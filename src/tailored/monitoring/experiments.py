"""Which variant of an experiment a user gets: a hash of the experiment and the user.

Assignment keeps no state per user. The same ``(experiment_id, user_id)`` always lands
in the same bucket, in every process and after every restart, so a user stays in one
variant for the whole test; another experiment reshuffles users independently.

The bucket is a number in ``[0, 1)`` from BLAKE2b: below ``holdout_share`` the user is
held out; the rest of the interval is split among the variants by their traffic shares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tailored.errors import InvalidDataError
from tailored.store import Experiment, Store
from tailored.store.experiments import HOLDOUT

_BUCKETS = float(1 << 64)


@dataclass(frozen=True)
class Assignment:
    """Where one user is in the running experiment.

    ``version`` is the model version that serves the user; ``None`` for a held-out
    user of an experiment without a holdout version (they get no recommendations).
    """

    experiment_id: str
    variant: str
    version: int | None

    @property
    def holdout(self) -> bool:
        return self.variant == HOLDOUT


def bucket(experiment_id: str, user_id: str) -> float:
    """A uniform number in ``[0, 1)`` fixed by the experiment and the user.

    Examples
    --------
    >>> bucket("exp1", "u42") == bucket("exp1", "u42")
    True
    >>> 0.0 <= bucket("exp1", "u42") < 1.0
    True
    """
    digest = hashlib.blake2b(f"{experiment_id}\x1f{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


def assign(experiment: Experiment, user_id: str) -> Assignment:
    """The variant ``user_id`` gets in ``experiment`` (deterministic, no state).

    Examples
    --------
    >>> from tailored.store import Experiment, Variant
    >>> test = Experiment("exp1", "demo", (Variant("A", 1, 0.5), Variant("B", 2, 0.5)))
    >>> assign(test, "u42") == assign(test, "u42")
    True
    >>> shares = [assign(test, f"u{i}").variant for i in range(10_000)]
    >>> round(shares.count("A") / len(shares), 1)
    0.5
    """
    point = bucket(experiment.experiment_id, user_id)
    if point < experiment.holdout_share:
        return Assignment(experiment.experiment_id, HOLDOUT, experiment.holdout_version)
    # Rescale the rest of the interval to [0, 1) and walk the cumulative shares.
    point = (point - experiment.holdout_share) / (1.0 - experiment.holdout_share)
    cumulative = 0.0
    for variant in experiment.variants:
        cumulative += variant.share
        if point < cumulative:
            return Assignment(experiment.experiment_id, variant.name, variant.version)
    last = experiment.variants[-1]  # rounding: the shares sum to 1 within float error
    return Assignment(experiment.experiment_id, last.name, last.version)


def create_experiment(store: Store, name: str, variants: list[tuple[str, int, float]], *,
                      holdout_share: float = 0.0, holdout_version: int | None = None,
                      planned_sample_size: int | None = None,
                      description: str = "", placement: str | None = None) -> Experiment:
    """Create a draft experiment after checking every version is in the model registry.

    Each variant is ``(name, model version, traffic share)``; a registered recipe
    (pipeline) is a model version too. The first variant is the control. ``placement``:
    the lists it runs on (None: lists asked without a placement); one experiment runs per
    placement at a time, each assigning users by its own hash.
    """
    versions = [(f"variant {n!r}", v) for n, v, _ in variants]
    if holdout_version is not None:
        versions.append(("the holdout", holdout_version))
    for label, version in versions:
        if isinstance(version, int) and store.models.get(version) is None:
            raise InvalidDataError(
                f"{label}: model version {version} is not in the registry; train it first "
                "(`tailored train --model NAME --no-promote`) and list versions with "
                "GET /models")
    return store.experiments.create(
        name, variants, holdout_share=holdout_share, holdout_version=holdout_version,
        planned_sample_size=planned_sample_size, description=description,
        placement=placement)


def parse_variant(text: str) -> tuple[str, int, float]:
    """``NAME=VERSION`` or ``NAME=VERSION:SHARE`` (share defaults to 1, normalised later).

    Examples
    --------
    >>> parse_variant("A=1")
    ('A', 1, 1.0)
    >>> parse_variant("B=3:0.2")
    ('B', 3, 0.2)
    """
    name, sep, rest = text.partition("=")
    version_text, _, share_text = rest.partition(":")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), int(version_text), float(share_text) if share_text else 1.0
    except ValueError:
        raise InvalidDataError(
            f"variant {text!r} is not NAME=VERSION or NAME=VERSION:SHARE (e.g. A=1, "
            "B=2:0.5)") from None
