"""A/B tests over HTTP: create, list, start, stop, and the analysis of an experiment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.errors import InvalidDataError, NotFoundError
from tailored.jobs.webhooks import experiment_stopped
from tailored.monitoring.abtest import analyze, sample_size
from tailored.monitoring.experiments import create_experiment
from tailored.pipeline.placement import PLACEMENT_NAME
from tailored.store import Experiment

from ..auth import AUTH_RESPONSES, require_scope
from ..deps import StateDep, StoreDep

router = APIRouter(tags=["experiments"], responses=AUTH_RESPONSES)

#: Versions are 64-bit integers in the registry; larger numbers cannot name one.
MAX_VERSION = 2**63 - 1
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

ExperimentId = Annotated[str, Path(description="The experiment's id.", max_length=64)]


class VariantSpec(BaseModel):
    """One arm: a registered model (or recipe) version and its share of the traffic."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=_PRINTABLE,
                      description="e.g. A, B, control, als.")
    version: int = Field(ge=1, le=MAX_VERSION,
                         description="Model version in the registry (GET /models).")
    share: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False,
                         description="Relative traffic weight; the weights are normalised "
                                     "to sum to 1.")


class ExperimentSpec(BaseModel):
    """A new experiment. The first variant is the control."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "als-vs-popular",
        "variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}],
        "holdout_share": 0.05, "baseline_ctr": 0.05, "minimum_detectable_lift": 0.1,
        "start": True}]})

    name: str = Field(min_length=1, max_length=256, pattern=_PRINTABLE)
    variants: list[VariantSpec] = Field(min_length=2, max_length=20)
    holdout_share: float = Field(0.0, ge=0, lt=1, description=(
        "Share of all users held out of personalisation: they get `holdout_version` (train "
        "a `popular` model for it) or, without one, an empty list."))
    holdout_version: int | None = Field(None, ge=1, le=MAX_VERSION)
    planned_sample_size: int | None = Field(None, ge=1, le=10**9, description=(
        "Impressions per variant the test is sized for; or give `baseline_ctr` and "
        "`minimum_detectable_lift` to have it computed."))
    baseline_ctr: float | None = Field(None, gt=0, lt=1)
    minimum_detectable_lift: float | None = Field(None, ge=-0.99, le=100,
                                                  description="Relative, 0.1 = +10%.")
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    description: str = Field("", max_length=2000, pattern=r"^[^\x00]*$")
    start: bool = Field(False, description="Start it at once.")
    placement: str | None = Field(None, pattern=PLACEMENT_NAME.pattern, description=(
        "The placement whose lists it tests (`?placement=NAME`); default: lists asked "
        "without one. One experiment runs per placement at a time; users are assigned "
        "by a hash of the experiment and the user, so tests on different placements "
        "are independent."))

    @model_validator(mode="after")
    def _one_way_to_size(self) -> ExperimentSpec:
        sized = (self.baseline_ctr, self.minimum_detectable_lift)
        if (sized[0] is None) != (sized[1] is None):
            raise ValueError("give both baseline_ctr and minimum_detectable_lift, or neither")
        if sized[0] is not None and self.planned_sample_size is not None:
            raise ValueError("give planned_sample_size or baseline_ctr with "
                             "minimum_detectable_lift, not both")
        return self


class VariantInfo(BaseModel):
    name: str
    version: int
    share: float = Field(description="Share of the non-holdout users.")


class ExperimentInfo(BaseModel):
    """An experiment as stored."""

    experiment_id: str
    name: str
    status: Literal["draft", "running", "stopped"]
    variants: list[VariantInfo]
    holdout_share: float
    holdout_version: int | None
    planned_sample_size: int | None
    description: str
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    placement: str | None

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentInfo:
        return cls.model_validate(experiment.to_dict())


class ExperimentAnalysis(BaseModel):
    """An experiment with its analysis (see ``ExperimentReport`` in
    ``tailored.monitoring.abtest``: per-variant rows with impressions, clicks, CTR and its
    Wilson interval, conversion, revenue per user, engagement, retention, lift,
    z-test and mSPRT p-values, probability to beat control; the cumulative CTR curve;
    the verdict)."""

    experiment: ExperimentInfo
    report: dict[str, Any]


#: What a state change answers when the experiment is not in a state that allows it.
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {
    "description": "The experiment's state does not allow it (only a draft starts, only "
                   "a running experiment stops, one experiment runs at a time)."}}


def _not_found(error: NotFoundError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error))


@router.post("/experiments", summary="Create an experiment (A/B test)",
             status_code=status.HTTP_201_CREATED, response_model=ExperimentInfo,
             dependencies=[Depends(require_scope("admin"))], responses=_CONFLICT)
def create(spec: ExperimentSpec, store: StoreDep, state: StateDep) -> ExperimentInfo:
    planned = spec.planned_sample_size
    if spec.baseline_ctr is not None and spec.minimum_detectable_lift is not None:
        try:
            planned = sample_size(spec.baseline_ctr, spec.minimum_detectable_lift,
                                  alpha=spec.alpha, power=spec.power)
        except ValueError as error:
            raise InvalidDataError(str(error)) from None
    experiment = create_experiment(
        store, spec.name, [(v.name, v.version, v.share) for v in spec.variants],
        holdout_share=spec.holdout_share, holdout_version=spec.holdout_version,
        planned_sample_size=planned, description=spec.description, placement=spec.placement)
    if spec.start:
        experiment = _change(store, state, experiment.experiment_id, "start")
    return ExperimentInfo.of(experiment)


@router.get("/experiments", summary="List experiments", response_model=list[ExperimentInfo],
            dependencies=[Depends(require_scope("read"))])
def list_experiments(
    store: StoreDep,
    status_: Annotated[Literal["draft", "running", "stopped"] | None, Query(
        alias="status", description="Only experiments in this state.")] = None,
) -> list[ExperimentInfo]:
    return [ExperimentInfo.of(e) for e in store.experiments.list(status_)]


@router.get("/experiments/{experiment_id}", summary="An experiment and its analysis",
            response_model=ExperimentAnalysis, dependencies=[Depends(require_scope("read"))])
async def show(experiment_id: ExperimentId, store: StoreDep,
               alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05) -> ExperimentAnalysis:
    # The analysis reads the served log and events: off the event loop.
    try:
        report = await anyio.to_thread.run_sync(
            lambda: analyze(store, experiment_id, alpha=alpha))
    except NotFoundError as error:
        raise _not_found(error) from None
    experiment = store.experiments.get(experiment_id)
    assert experiment is not None
    return ExperimentAnalysis(experiment=ExperimentInfo.of(experiment), report=report.to_dict())


@router.post("/experiments/{experiment_id}/start", summary="Start an experiment",
             response_model=ExperimentInfo, dependencies=[Depends(require_scope("admin"))],
             responses=_CONFLICT)
def start(experiment_id: ExperimentId, store: StoreDep, state: StateDep) -> ExperimentInfo:
    return ExperimentInfo.of(_change(store, state, experiment_id, "start"))


@router.post("/experiments/{experiment_id}/stop", summary="Stop an experiment",
             response_model=ExperimentInfo, dependencies=[Depends(require_scope("admin"))],
             responses=_CONFLICT)
def stop(experiment_id: ExperimentId, store: StoreDep, state: StateDep) -> ExperimentInfo:
    stopped = _change(store, state, experiment_id, "stop")
    experiment_stopped(store, stopped)  # subscribers hear of it (webhooks)
    return ExperimentInfo.of(stopped)


def _change(store: Any, state: Any, experiment_id: str, action: str) -> Experiment:
    try:
        changed: Experiment = getattr(store.experiments, action)(experiment_id)
    except NotFoundError as error:
        raise _not_found(error) from None
    except InvalidDataError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    state.reread_soon()  # this process serves the change at once
    return changed
