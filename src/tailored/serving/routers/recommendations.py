"""GET /recommendations/{user_id} and POST /recommendations/session.

A request: parse what it asks (the pipeline's :class:`~tailored.pipeline.Overrides`:
filter, boosts, exclude, re-ranker knobs; and the context) -> pick the version -> run
its pipeline (the scorer's top list cached per worker and validated against the store,
then rules, filters, re-rankers) -> exploration, the service's online stage (the
version's bandit fills a share of the slots, new catalog items included) -> reasons,
when asked -> an answer under a fresh ``recommendation_id``, recorded in the served log
(with each slot's propensity) in the background.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from tailored.dataset import UserQuery
from tailored.expressions import ExpressionError
from tailored.monitoring.experiments import Assignment
from tailored.pipeline import LiveRecommender, Overrides, Placement, Ranked
from tailored.pipeline.placement import MAX_K, PLACEMENT_NAME
from tailored.schema import Id
from tailored.store import PlacementVersion, Served

from ..auth import AUTH_RESPONSES, Caller, UserReadAccess
from ..cache import rank_user
from ..deps import NO_MODEL, StateDep
from ..exploration import Shown, explore_slots
from ..metrics import MetricsDep, ServiceMetrics
from ..schemas import (
    MAX_BOOSTS,
    MAX_CONTEXT_KEYS,
    MAX_EXPRESSION_LENGTH,
    Recommendations,
    SessionRequest,
)
from ..state import ServiceState

router = APIRouter(tags=["recommendations"], responses=AUTH_RESPONSES)

_CONTEXT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63}):(.{0,256})$", re.DOTALL)
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]{0,14})$")
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]{0,14})\.[0-9]{1,15}$")

#: The selection a request may add to a list (here and for similar items).
ExcludeQuery = Annotated[list[Id], Query(
    description="Item ids to leave out (repeat the parameter for several).", max_length=MAX_K)]
FilterQuery = Annotated[str | None, Query(
    max_length=MAX_EXPRESSION_LENGTH,
    description='Keep items where this holds, e.g. `price < 100 and "shoes" in categories`.')]
BoostQuery = Annotated[list[str], Query(
    max_length=MAX_BOOSTS,
    description="`EXPRESSION:FACTOR`, repeatable, e.g. `in_stock == true:1.2`.")]
ContextQuery = Annotated[list[str], Query(
    max_length=MAX_CONTEXT_KEYS, description="`KEY:VALUE`, repeatable, e.g. `device:mobile`.")]
PlacementQuery = Annotated[str | None, Query(
    pattern=PLACEMENT_NAME.pattern, description="Where the list is shown (a placement: "
    "`GET /placements`): its version, filter, boosts, knobs, shares and fallback apply, "
    "and this request's parameters narrow and override them.")]
NewArrivalsQuery = Annotated[float | None, Query(
    ge=0, le=1, description="Share of slots given to new arrivals (items added after "
                            "training, chosen by content); default: the placement's, else "
                            "the `new_arrivals_share` setting.")]
#: A request without a placement is one of the default placement.
NO_PLACEMENT = Placement()

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "`model` names no registered version."},
    409: {"description": "The chosen version's artifact cannot be loaded."},
    422: {"description": "A malformed parameter; for `filter` and `boost` the error names "
                         "the column of the problem (`column`, 1-based)."},
    503: {"description": "No trained model yet; run `tailored train`."},
}

_SELECTION_HELP = """
**filter**: keep only items where an expression holds, over item attributes
(`price` or `item.price`, `categories` as a list, `item_id`) and `context.<key>`:
`price < 100 and "shoes" in categories`. The language: comparisons (`== != < <= > >=`),
`in` / `not in`, `and or not`, arithmetic, `lower() upper() len() abs() min() max()`.

**boost** (repeatable): `EXPRESSION:FACTOR` scales the scores of matching items by the
factor, e.g. `in_stock == true:1.2` or `"shoes" in categories:1.5`; a factor below 1
buries (`price > 500:0.5`). The factor follows the last colon outside quotes.

**context** (repeatable): `KEY:VALUE` describes the moment, e.g. `context=device:mobile`
`&context=hour:20`; values that read as numbers or `true`/`false` are numbers and
booleans. Models and rules that read the context see it; so do filters and boosts.

An expression that does not parse, or names an attribute no item has, is refused with a
422 whose `column` points at the problem.

**new_arrivals** (0..1, default: the placement's, else the `new_arrivals_share` setting,
0 = off): the share of slots given to items put into the catalog after the model was
trained (it cannot score them), ranked for the user by content (title, text and
categories like the items they touched recently; the newest first for a user without
history) and spread evenly down the list; they are marked `new_arrival: true`.

**explore** (0..1, default: the `exploration_share` setting, 0 = off): the share of slots
a LinUCB bandit fills instead of the model, choosing among the model's candidates and
the catalog's new items (available, not yet known to the model), so new items get shown
and clicks on what it shows teach it (in every worker). The served log keeps each
slot's propensity (below 1 where exploring), for unbiased off-policy evaluation; items
it placed have `explored: true` (and an exploration `reason` with `explain`).
"""


# ---- reading the request -----------------------------------------------------------------


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    if _INTEGER.match(value):
        return int(value)
    if _DECIMAL.match(value):
        return float(value)
    return value


def parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    """``["device:mobile", "hour:20"]`` as ``{"device": "mobile", "hour": 20}``."""
    context: dict[str, Any] = {}
    for position, pair in enumerate(pairs):
        match = _CONTEXT.match(pair)
        if match is None or "\x00" in pair:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{
                "loc": ["query", "context", position], "type": "value_error",
                "msg": "context entries are KEY:VALUE with a KEY of letters, digits and _ "
                       "(at most 64) and a VALUE of at most 256 characters, e.g. "
                       "device:mobile", "input": pair}])
        context[match.group(1)] = _typed(match.group(2))
    return context


def expression_error(error: ExpressionError, filter: str | None, boosts: Sequence[str],
                     prefix: str) -> HTTPException:
    """The 422 of a bad ``filter`` or ``boost``, located at the parameter it came from."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{
        "loc": _where(error, filter, boosts, prefix), "type": "expression",
        "msg": str(error), "column": error.column, "input": error.text}])


def _where(error: ExpressionError, filter: str | None, boosts: Sequence[str],
           prefix: str) -> list[str | int]:
    """Which parameter an expression error came from."""
    if filter is not None and error.text == filter:
        return [prefix, "filter"]
    for position, text in enumerate(boosts):
        if text.startswith(error.text):
            return [prefix, "boost", position]
    return [prefix, "filter"]


def parse_overrides(filter: str | None, boosts: Sequence[str], exclude: Sequence[str],
                    prefix: str = "query", *, live: LiveRecommender | None = None,
                    **stages: Any) -> Overrides:
    """The request's overrides of the pipeline's stages; a 422 names a bad expression,
    or one too costly to run over ``live``'s catalog."""
    try:
        # The catalog prices the expressions: without any, the request reads nothing.
        catalog = None if live is None or not (filter or boosts) else live.catalog()
        return Overrides.parse(filter, boosts, exclude, catalog=catalog, **stages)
    except ExpressionError as error:
        raise expression_error(error, filter, boosts, prefix) from None


def check_privileges(caller: Caller, model: str | None, explain: bool,
                     user_id: str | None) -> None:
    """403 for what a frontend's credential may not ask: ``model`` (it loads versions,
    an operator's lever: ``admin``) and the ``reason``s of a stored user (they tell the
    user's history: a ``write`` key, or that user's own token)."""
    if model is not None and not caller.grants("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=(
            "`model` needs an API key with scope 'admin' (it loads model versions); "
            "leave it out to get the serving version"))
    if explain and user_id is not None and not caller.may_act_for(user_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=(
            "`explain` tells the user's history, so it needs an API key with scope "
            "'write' or a user token of this user; leave it out, or ask from the backend"))


def _live(state: ServiceState, model: str | None) -> LiveRecommender:
    """The version a request names (number or name), or the serving one; 503 when none."""
    live = state.live_for(model)
    if live is None:
        detail = NO_MODEL
        if state.load_error:
            detail = (f"the active model cannot be loaded ({state.load_error}); promote "
                      "another version or run `tailored train`")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return live


# ---- answering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    """What a request asks of its list once its placement is applied: the length, the
    shares of exploration and of new arrivals, the fallback, and the placement."""

    k: int
    explore: float
    new_arrivals: float
    placement: Placement = NO_PLACEMENT
    stored: PlacementVersion | None = None

    @classmethod
    def of(cls, state: ServiceState, placement: str | None, k: int | None,
           explore: float | None, new_arrivals: float | None) -> Asked:
        """The request's values, else its placement's, else the service's; a 404 for a
        placement there is none of."""
        stored, spec = None, NO_PLACEMENT
        if placement is not None:
            found = state.placement(placement)
            if found is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
                    f"no placement named {placement!r}; `GET /placements` lists them"))
            stored, spec = found
        settings = state.settings

        def first(*values: float | None) -> float:
            return next(float(v) for v in values if v is not None)

        return cls(k or spec.k, first(explore, spec.explore, settings.exploration_share),
                   first(new_arrivals, spec.new_arrivals, settings.new_arrivals_share),
                   spec, stored)

    @property
    def name(self) -> str | None:
        return None if self.stored is None else self.stored.name

    def context(self) -> dict[str, Any]:
        """What the served log's context keeps of the placement."""
        return {} if self.stored is None else {"placement_version": self.stored.version}


def _rank(state: ServiceState, live: LiveRecommender, query: UserQuery, asked: Asked,
          overrides: Overrides, filter: str | None, boosts: Sequence[str], prefix: str, *,
          cached: bool) -> Shown:
    """The version's pipeline for one user, then the service's stages: exploration's
    share of the slots, new arrivals' share, and the placement's fallback."""
    user_id, k, share = query.user_ids[0], asked.k, asked.explore
    try:
        if cached:
            ranked = rank_user(live, state.cache, user_id, k, overrides, query.context,
                               state.settings.cache_top_n, explore=share > 0)
        else:  # a session: its own history, nothing to cache
            ranked = live.rank(query, k, overrides, explore=share > 0)
        shown = Shown.ranking(ranked)
        if query.events is None and (share > 0 or asked.new_arrivals > 0) \
                and not live.catalog().new_items().empty:
            # Both stages offer new items the user has not met: read the history once.
            query = live.query(query.user_ids, query.context)
        if share > 0:
            version = None if live.version is None else live.version.version
            shown = explore_slots(live, state.bandits.bandit(version, asked.name), query,
                                  ranked, k, share, overrides)
        if asked.new_arrivals > 0:
            arrivals = live.new_arrivals(query, k, overrides)
            shown = shown.with_new_arrivals(arrivals, k, asked.new_arrivals)
        missing = k - len(shown.ranked.item_ids)
        if missing > 0 and asked.placement.fallback != "none":
            filled = live.popular_items(k, _without(query, live, overrides, shown),
                                        trending=asked.placement.fallback == "trending",
                                        context=query.context)
            shown = shown.with_fallback(filled.head(missing))
    except ExpressionError as error:  # an attribute no item has: known once read
        raise expression_error(error, filter, boosts, prefix) from None
    return shown


def _without(query: UserQuery, live: LiveRecommender, overrides: Overrides, shown: Shown
             ) -> Overrides:
    """``overrides`` that also leave out what is shown and what the user has."""
    events = query.events if query.events is not None else live.history(
        [live.stored_id(query.user_ids[0])])
    had = events["item_id"].astype(str).tolist()
    return replace(overrides, exclude=(*overrides.exclude, *shown.ranked.item_ids, *had))


def _answer(state: ServiceState, metrics: ServiceMetrics, live: LiveRecommender,
            user_id: str | None, shown: Shown, context: Mapping[str, Any], asked: Asked,
            assignment: Assignment | None = None,
            reasons: Sequence[str] | None = None) -> Response:
    """The JSON answer, and its record queued for the served log."""
    recommendation_id = uuid.uuid4().hex
    version = None if live.version is None else live.version.version
    experiment_id, variant = ((None, None) if assignment is None
                              else (assignment.experiment_id, assignment.variant))
    ranked = shown.ranked
    state.served_log.submit(Served(
        recommendation_id, user_id, datetime.now(UTC), live.name, version,
        experiment_id, variant, ranked.item_ids, ranked.scores, shown.propensities,
        {**context, **shown.served_context(), **asked.context()}, asked.name))
    metrics.served(asked.name, live.name)
    items: list[dict[str, Any]] = [
        {"item_id": item, "score": score, "rank": rank}
        for rank, (item, score) in enumerate(zip(ranked.item_ids, ranked.scores, strict=True),
                                             start=1)]
    for flag, marks in (("explored", shown.explored), ("new_arrival", shown.new_arrivals)):
        if marks is not None:
            for item, marked in zip(items, marks, strict=True):
                item[flag] = marked
    if reasons is not None:
        for item, reason in zip(items, reasons, strict=True):
            item["reason"] = reason
    body = {
        "recommendation_id": recommendation_id,
        "user_id": user_id,
        "model": {"name": live.name, "version": version},
        "placement": (None if asked.stored is None else
                      {"name": asked.stored.name, "version": asked.stored.version}),
        "experiment": None if assignment is None else {"experiment_id": experiment_id,
                                                       "variant": variant},
        "items": items,
    }
    # orjson straight from dicts: the response model documents the shape, and skipping
    # its per-request validation is a large part of the time of a cached answer.
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/recommendations/{user_id}",
    summary="Recommend items for a user",
    description=(
        "The top `k` items for the user, scored by the serving model (or the version "
        "`model` names) from the user's history as stored right now: an event "
        "acknowledged by `POST /events` a moment ago already counts, in every worker, "
        "without retraining. Items the user already interacted with, unavailable items "
        "and `exclude`d items are left out. A user the store knows nothing about gets "
        "the most popular items (never an error). The version's pipeline runs whole: "
        "its business rules, then this request's filters and boosts, then its re-rankers "
        "(the request's `diversity`, `novelty`, `max_per_category` override the recipe's), "
        "the same stages as `tailored recommend` and `tailored evaluate`. With a "
        "`placement`, its configuration applies first. Each answer has a "
        "`recommendation_id` and is recorded in the served log. With `explore` a bandit "
        "fills a share of the slots (see below).\n" + _SELECTION_HELP),
    response_model=Recommendations,
    responses=_RESPONSES,
)
def recommend(
    user_id: Annotated[Id, Path(description="The user's id, as sent with their events.")],
    state: StateDep,
    caller: UserReadAccess,
    metrics: MetricsDep,
    k: Annotated[int | None, Query(ge=1, le=MAX_K, description="How many items to return; "
                                   "default: the placement's, else 10.")] = None,
    placement: PlacementQuery = None,
    exclude: ExcludeQuery = [],  # noqa: B006 (FastAPI copies defaults per request)
    filter: FilterQuery = None,
    boost: BoostQuery = [],  # noqa: B006
    context: ContextQuery = [],  # noqa: B006
    model: Annotated[str | None, Query(
        min_length=1, max_length=256,
        description="A registered version number, or a model or recipe name (its active "
                    "version, else its newest); default: the placement's, else the "
                    "serving version. Needs an `admin` key.")] = None,
    diversity: Annotated[float | None, Query(
        ge=0, le=1, description="Trade relevance for variety (MMR over item categories, "
                                "else the scorer's item similarity): 0 keeps the scorer's "
                                "order, 1 picks by dissimilarity; default: the recipe's.")
    ] = None,
    novelty: Annotated[float | None, Query(
        ge=0, le=1, description="Favour less popular items: 0 off, 1 least popular first; "
                                "default: the recipe's.")] = None,
    max_per_category: Annotated[int | None, Query(
        ge=1, le=MAX_K, description="At most this many items of one category; default: "
                                    "the recipe's.")] = None,
    revenue: Annotated[float | None, Query(
        ge=0, le=1, description="Mix expected revenue (price x relevance) into the order: 0 "
                                "relevance only, 1 expected revenue only; default: the "
                                "placement's, else the recipe's.")] = None,
    explain: Annotated[bool, Query(
        description="Add a `reason` to each item. The reasons tell the user's history: "
                    "a `write` key, or a user token of this user.")
    ] = False,
    explore: Annotated[float | None, Query(
        ge=0, le=1, description="Share of slots a bandit fills to learn (new items "
                                "included); default: the placement's, else the "
                                "`exploration_share` setting.")
    ] = None,
    new_arrivals: NewArrivalsQuery = None,
) -> Response:
    check_privileges(caller, model, explain, user_id)
    request_context = parse_context(context)
    asked = Asked.of(state, placement, k, explore, new_arrivals)
    # An A/B test on the placement picks the version for its users (unless the request
    # names a model).
    assignment = state.assign(user_id, asked.name) if model is None else None
    live = (_live(state, model or asked.placement.model)
            if assignment is None or assignment.version is None
            else state.live_for_version(assignment.version))
    overrides = asked.placement.overrides(parse_overrides(
        filter, boost, exclude, live=live, diversity=diversity, novelty=novelty,
        max_per_category=max_per_category, revenue=revenue))
    query = UserQuery((user_id,), None, request_context)
    if assignment is not None and assignment.version is None:  # held out: no list
        shown = Shown.ranking(Ranked([], [], np.empty(0, dtype=np.int64)))
    else:
        shown = _rank(state, live, query, asked, overrides, filter, boost, "query",
                      cached=True)
    reasons = None
    if explain:
        reasons = live.explain(live.query([user_id], request_context), shown.ranked,
                               shown.explored)
    return _answer(state, metrics, live, user_id, shown, request_context, asked, assignment,
                   reasons)


@router.post(
    "/recommendations/session",
    summary="Recommend items for an anonymous session",
    description=(
        "Items for a visitor the store does not know, from what they looked at so far "
        "in this session (`items`, each a view), scored by the model as a history of "
        "its own: no stored user is needed and nothing is cached. The same `filter`, "
        "`boost`, `exclude`, `context`, `model`, `placement`, `explore` and "
        "`new_arrivals` as `GET /recommendations/{user_id}` (here in the body; `context` "
        "is a JSON object).\n" + _SELECTION_HELP),
    response_model=Recommendations,
    responses=_RESPONSES,
)
def recommend_for_session(body: SessionRequest, state: StateDep, caller: UserReadAccess,
                          metrics: MetricsDep) -> Response:
    check_privileges(caller, body.model, explain=False, user_id=None)
    asked = Asked.of(state, body.placement, body.k if "k" in body.model_fields_set else None,
                     body.explore, body.new_arrivals)
    live = _live(state, body.model or asked.placement.model)
    overrides = asked.placement.overrides(parse_overrides(
        body.filter, body.boost, body.exclude, prefix="body", live=live,
        diversity=body.diversity, novelty=body.novelty,
        max_per_category=body.max_per_category, revenue=body.revenue))
    anonymous = f"session:{body.session_id or uuid.uuid4().hex}"
    events = pd.DataFrame({"user_id": pd.Series([anonymous] * len(body.items), dtype=object),
                           "item_id": pd.Series(body.items, dtype=object),
                           "event_type": pd.Series(["view"] * len(body.items), dtype=object)})
    context = dict(body.context)
    query = live.query([anonymous], context, events)
    shown = _rank(state, live, query, asked, overrides, body.filter, body.boost, "body",
                  cached=False)
    reasons = live.explain(query, shown.ranked, shown.explored) if body.explain else None
    if body.session_id is not None:
        context.setdefault("session_id", body.session_id)
    return _answer(state, metrics, live, None, shown, context, asked, reasons=reasons)


__all__ = ["MAX_CONTEXT_KEYS", "MAX_K", "BoostQuery", "ContextQuery", "ExcludeQuery",
           "FilterQuery", "expression_error", "parse_context", "parse_overrides", "router"]
