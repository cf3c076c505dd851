"""What a running service holds: the store, its settings and the model that serves.

The served model is one reference to a :class:`~tailored.pipeline.LiveRecommender`.
A swap (a promotion through the API, or a new active version found in the registry)
loads the new model completely first and then replaces that reference, so a request
in flight finishes on the model it started with and none is dropped.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from tailored.errors import ModelNotFoundError
from tailored.jobs.erase import ErasureReport, erase_users
from tailored.jobs.webhooks import WebhookDispatcher, model_promoted
from tailored.monitoring.experiments import Assignment, assign
from tailored.pipeline import LiveRecommender, Pipeline, Placement, stored_placement
from tailored.pipeline.live import registered_version
from tailored.settings import Settings
from tailored.store import Experiment, ModelVersion, PlacementVersion, Store

from .cache import TopListCache
from .exploration import Bandits
from .security import mask_password
from .served_log import ServedLogWriter

logger = logging.getLogger("tailored.serving")

#: How often, at most, a request checks the registry for a newly promoted version.
REGISTRY_POLL_SECONDS = 2.0


class ModelLoadError(Exception):
    """A registered model version whose artifact cannot be loaded."""

    def __init__(self, version: ModelVersion, cause: Exception) -> None:
        super().__init__(
            f"model version {version.version} ({version.name}) cannot be loaded from "
            f"{version.path}: {type(cause).__name__}: {cause}")
        self.version = version


def load_version(store: Store, version: ModelVersion) -> LiveRecommender:
    """The pipeline of ``version``, loaded completely and bound to ``store``."""
    try:
        pipeline = Pipeline.load(Path(version.path))
    except Exception as error:  # a missing or corrupt artifact: say which and where
        raise ModelLoadError(version, error) from error
    return LiveRecommender(store, pipeline, version)


class ServiceState:
    """The store, the settings and the live recommender of one running app.

    ``current()`` is what request handlers call: it returns the model serving now,
    after checking (at most every ``registry_poll_seconds``) whether another process
    promoted a different version, and swapping to it if so.
    """

    def __init__(self, store: Store, settings: Settings, *,
                 registry_poll_seconds: float = REGISTRY_POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.settings = settings
        self.registry_poll_seconds = registry_poll_seconds
        self._clock = clock
        self._live: LiveRecommender | None = None
        self._load_error: str | None = None
        self._failed_version: int | None = None
        self._checked_at = -float("inf")
        self._swap_lock = threading.Lock()
        # Other versions asked for by number (`model=`, experiment variants), least
        # recently used first; the active one is always `_live`.
        self._loaded: OrderedDict[int, LiveRecommender] = OrderedDict()
        self._load_lock = threading.Lock()
        self._named: dict[str, tuple[float, int]] = {}  # model= text -> (read at, version)
        self.cache = TopListCache(settings.cache_entries)
        self.served_log = ServedLogWriter(
            store, flush_seconds=settings.served_log_flush_seconds).start()
        # Sends due webhooks (tailored.jobs.webhooks); workers never send one attempt twice.
        self.webhooks = WebhookDispatcher.from_settings(store, settings)
        if settings.webhook_delivery:
            self.webhooks.start()
        # The running experiments (one per placement) and the placements, re-read like
        # the registry.
        self._experiments: dict[str | None, Experiment] = {}
        self._placements: dict[str, tuple[PlacementVersion, Placement]] = {}
        self._experiment_checked_at = -float("inf")
        # Exploration bandits per version, learnt from the store in a background thread
        # (started now when exploring by default, else on the first `explore` request).
        self.bandits = Bandits.from_settings(store, settings)
        if settings.exploration_share > 0:
            self.bandits.start()
        # The newest erasure this process's models are free of (tailored.jobs.erase).
        self._erasures_seen = store.privacy.last_erasure_id()

    def close(self) -> None:
        """Stop learning and sending webhooks, and write the rest of the served log (at
        shutdown)."""
        self.bandits.close()
        self.served_log.close()
        self.webhooks.close()

    # ---- reading ----------------------------------------------------------------------

    @property
    def live(self) -> LiveRecommender | None:
        """The model serving now, without looking at the registry."""
        return self._live

    @property
    def load_error(self) -> str | None:
        """Why the registry's active version is not serving, if it failed to load."""
        return self._load_error

    def current(self) -> LiveRecommender | None:
        """The model serving now, after picking up a version promoted elsewhere."""
        self.refresh()
        return self._live

    def live_for_version(self, version: int) -> LiveRecommender:
        """A loaded model for any registered ``version``, the active one included.

        Versions other than the active one are loaded on first use and kept, at most
        ``settings.loaded_models`` of them (least recently used dropped). Raises
        :class:`~tailored.errors.ModelNotFoundError` for a version not in the registry
        and :class:`ModelLoadError` for one whose artifact cannot be loaded.
        """
        live = self.current()
        if live is not None and live.version is not None and live.version.version == version:
            return live
        with self._load_lock:
            found = self._loaded.get(version)
            if found is not None:
                self._loaded.move_to_end(version)
                return found
            registered = self.store.models.get(version)
            if registered is None:
                raise ModelNotFoundError(
                    f"model version {version} is not in the registry; GET /models lists "
                    "the versions there are")
            loaded = load_version(self.store, registered)
            self._loaded[version] = loaded
            while len(self._loaded) > self.settings.loaded_models:
                self._loaded.popitem(last=False)
            return loaded

    @property
    def loaded_versions(self) -> list[int]:
        """Versions loaded besides the active one, least recently used first."""
        return list(self._loaded)

    def live_for(self, model: str | None) -> LiveRecommender | None:
        """The model a request names: a version number, or the newest version whose
        model or recipe name is ``model``; the serving one when None."""
        if model is None:
            return self.current()
        now = self._clock()
        known = self._named.get(model)
        if known is None or now - known[0] >= self.registry_poll_seconds:
            # A name's version is re-read like the registry: placements name one per request.
            if len(self._named) > 1_000:  # texts of admins' requests: keep it bounded
                self._named.clear()
            known = self._named[model] = (now, registered_version(self.store, model).version)
        return self.live_for_version(known[1])

    # ---- changing ---------------------------------------------------------------------

    def load_active(self) -> None:
        """Serve the registry's active version (at startup); no model is not an error."""
        with self._swap_lock:
            self._checked_at = self._clock()
            try:
                live = LiveRecommender.active(self.store)
            except ModelNotFoundError:
                logger.warning("no trained model in the store at %s yet; recommendations "
                               "answer 503 until one is trained with `tailored train`",
                               mask_password(self.store.url))
                return
            except Exception as error:  # a missing or corrupt artifact: serve without it
                self._load_error = (f"the active model version cannot be loaded: "
                                    f"{type(error).__name__}: {error}")
                active = self.store.models.active()
                self._failed_version = None if active is None else active.version
                logger.error("%s; recommendations answer 503 until another version is "
                             "promoted", self._load_error)
                return
            self._install(live)

    def refresh(self) -> None:
        """Swap to the registry's active version if it changed since the last check.

        Checks at most every ``registry_poll_seconds`` (one cheap query). Only one
        request checks at a time; the others go on with the model serving now. A version
        whose artifact fails to load is not tried again (promote another one).
        """
        if self._clock() - self._checked_at < self.registry_poll_seconds:
            return
        if not self._swap_lock.acquire(blocking=False):
            return
        try:
            self._checked_at = self._clock()
            if self.store.privacy.last_erasure_id() > self._erasures_seen:
                self._reload_erased()  # another process erased users
                return  # a promotion meanwhile is taken at the next check
            active = self.store.models.active()
            if active is None or active.version in (self.serving_version,
                                                    self._failed_version):
                return
            try:
                live = load_version(self.store, active)
            except ModelLoadError as error:  # keep serving what we have
                self._load_error = str(error)
                self._failed_version = active.version
                logger.error("%s; still serving version %s", error, self.serving_version)
                return
            self._install(live)
        finally:
            self._swap_lock.release()

    def promote(self, version: int) -> tuple[ModelVersion, int | None]:
        """Make ``version`` active in the registry and serve it; return it and the previous.

        The model is loaded before the registry changes, so a broken artifact is never
        promoted; requests keep being answered by the old model until the swap.
        """
        with self._swap_lock:
            found = self.store.models.get(version)
            if found is None:
                raise ModelNotFoundError(
                    f"model version {version} is not in the registry; GET /models lists "
                    "the versions there are")
            previous = self.serving_version
            live = load_version(self.store, found)  # raises ModelLoadError, nothing changed
            before = self.store.models.active()
            promoted = self.store.models.promote(version)
            self._install(LiveRecommender(self.store, live.pipeline, promoted))
            self._checked_at = self._clock()
            model_promoted(self.store, promoted, None if before is None else before.version)
            return promoted, previous

    def erase(self, user_ids: Sequence[str], erased_by: str) -> ErasureReport:
        """Erase users everywhere (:func:`~tailored.jobs.erase.erase_users`), then serve
        from the rewritten artifacts, with no cached list left."""
        with self._swap_lock:
            report = erase_users(self.store, self.settings, user_ids, erased_by=erased_by)
            self._reload_erased()  # drops every cached list, theirs included
            return report

    def _reload_erased(self) -> None:
        """Reload the loaded versions from their artifacts, which an erasure rewrote (a
        version in memory may hold erased users), and drop every cached list. The
        caller holds the swap lock."""
        self._erasures_seen = self.store.privacy.last_erasure_id()
        with self._load_lock:
            self._loaded.clear()  # loaded again from disk when next asked for
        live = self._live
        if live is not None and live.version is not None:
            try:
                self._install(load_version(self.store, live.version))
            except ModelLoadError as error:  # serving what it held would keep the users
                # (An artifact mid-swap by another erasure, say: the next registry check
                # loads the active version again.)
                self._live = None
                self._load_error = str(error)
                logger.error("%s after an erasure; recommendations answer 503 until it "
                             "loads", error)
        self.cache.clear()

    @property
    def serving_version(self) -> int | None:
        live = self._live
        return None if live is None or live.version is None else live.version.version

    def _install(self, live: LiveRecommender) -> None:
        previous = self.serving_version
        live.catalog()  # the item table, read before the first request needs it
        # A model and its catalog are millions of long-lived objects: frozen out of the
        # garbage collector's reach, they no longer stall requests in full collections.
        gc.freeze()
        self._live = live  # the swap: one reference, requests in flight keep the old one
        self._load_error = None
        self._failed_version = None
        if live.version is not None and live.version.version != previous:
            logger.info("serving model %s version %s (was %s)", live.version.name,
                        live.version.version, previous)

    # ---- placements and experiments (A/B tests) ---------------------------------------

    def _refresh(self) -> None:
        """Re-read the running experiments and the placements, at most every
        ``registry_poll_seconds``.

        An experiment's variants' versions are loaded when it is first seen, so no
        request waits for a load later; an experiment naming a version that cannot be
        loaded is not served (logged), and its users get the serving model instead.
        """
        now = self._clock()
        if now - self._experiment_checked_at < self.registry_poll_seconds:
            return
        self._experiment_checked_at = now  # first: concurrent requests do not all read
        experiments: dict[str | None, Experiment] = {}
        for running in self.store.experiments.list("running"):
            current = self._experiments.get(running.placement)
            if current is None or current.experiment_id != running.experiment_id:
                prepared = self._prepare_experiment(running)
                if prepared is None:
                    continue
            experiments[running.placement] = running
        self._experiments = experiments
        self._placements = {version.name: (version, stored_placement(version))
                            for version in self.store.placements.list()}

    def running_experiment(self, placement: str | None = None) -> Experiment | None:
        """The experiment running now on ``placement`` (None: lists without one)."""
        self._refresh()
        return self._experiments.get(placement)

    def placement(self, name: str) -> tuple[PlacementVersion, Placement] | None:
        """The placement ``name`` as stored (within ``registry_poll_seconds``), None when
        there is none."""
        self._refresh()
        return self._placements.get(name)

    def _prepare_experiment(self, experiment: Experiment) -> Experiment | None:
        versions = {v.version for v in experiment.variants}
        if experiment.holdout_version is not None:
            versions.add(experiment.holdout_version)
        try:
            for version in sorted(versions):
                self.live_for_version(version)
        except (ModelNotFoundError, ModelLoadError) as error:
            logger.error("experiment %s is running but not served: %s; stop it and create "
                         "one with loadable versions", experiment.experiment_id, error)
            return None
        logger.info("serving experiment %s (%s)", experiment.experiment_id,
                    ", ".join(f"{v.name}=v{v.version}" for v in experiment.variants))
        return experiment

    def assign(self, user_id: str, placement: str | None = None) -> Assignment | None:
        """The variant for ``user_id`` of the experiment running on ``placement`` (a hash:
        the same in every worker and after restarts), or None when none runs there."""
        experiment = self.running_experiment(placement)
        return None if experiment is None else assign(experiment, user_id)

    def reread_soon(self) -> None:
        """Re-read the running experiments and the placements on the next request (one
        was changed here)."""
        self._experiment_checked_at = -float("inf")
