"""The bodies the API answers with, as pydantic models (they document /docs too).

Request bodies reuse :mod:`tailored.schema` (an event over HTTP is the same
:class:`~tailored.schema.Event` a file import produces).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from tailored.pipeline.live import SimilarityKind
from tailored.pipeline.placement import (
    MAX_BOOSTS,
    MAX_EXPRESSION_LENGTH,
    PLACEMENT_NAME,
)
from tailored.schema import (
    MAX_ATTRIBUTE_TEXT,
    MAX_ATTRIBUTES,
    MAX_CONSENT_PURPOSES,
    MAX_SAFE_INTEGER,
    Id,
    Item,
    Purpose,
    User,
)
from tailored.store import ModelVersion
from tailored.store.keys import ApiKey, Scope

from .user_tokens import MAX_TTL_SECONDS


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventsReceipt(_Response):
    """What happened to a posted event or batch; sent once every event is durable."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"received": 3, "stored": 2, "duplicates": 1}]})

    received: int = Field(description="Events in the request.")
    stored: int = Field(description="Events that were new and are now stored.")
    duplicates: int = Field(
        description="Events whose event_id was already stored (or repeated in the request); "
                    "kept once, so re-sending a batch is safe.")
    discarded: int = Field(
        0, description="Events of users who withhold personalization, not stored because "
                       "the `events_without_consent` setting is `discard`.")


class ScoredItem(_Response):
    """One recommended item."""

    item_id: str
    score: float = Field(description="The model's score; higher is better. Comparable only "
                                     "within one response.")
    rank: int = Field(ge=1, description="Position in the list, 1 is best.")


class ModelRef(_Response):
    """The model version that produced an answer."""

    name: str = Field(description="The version's name: its recipe's (a bare model's "
                                   "family, e.g. item_knn or als).")
    version: int | None = Field(description="Version in the model registry.")


class RecommendedItem(ScoredItem):
    """One recommended item, with why it was chosen when ``explain`` was asked."""

    reason: str | None = Field(
        None, description="Why this item, in words (only with `explain=true`).")
    explored: bool | None = Field(
        None, description="True where the exploration bandit placed the item instead of "
                          "the model (only when exploring, `explore` > 0).")
    new_arrival: bool | None = Field(
        None, description="True where a new arrival took the slot (only with "
                          "`new_arrivals` > 0).")


class PlacementRef(_Response):
    """The placement an answer was made for, and the version of its configuration."""

    name: str
    version: int


class ExperimentRef(_Response):
    """The A/B test and variant that answered, when one is running."""

    experiment_id: str
    variant: str


class Recommendations(_Response):
    """Top items for one user (or session), best first, under one recommendation id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "recommendation_id": "8c1e0f5b2a7d4e6f9b3c1a2d4e5f6a7b",
        "user_id": "u42", "model": {"name": "item_knn", "version": 3},
        "items": [{"item_id": "i7", "score": 1.83, "rank": 1},
                  {"item_id": "i2", "score": 1.41, "rank": 2}],
    }]})

    recommendation_id: str = Field(
        description="Identifies this answer in the served log. Send it back as "
                    "`context.recommendation_id` (with `context.position`) on the "
                    "impression, click and purchase events it leads to, for attribution.")
    user_id: str | None = Field(description="The user; null for an anonymous session.")
    model: ModelRef
    placement: PlacementRef | None = Field(
        None, description="The placement asked for, when one was.")
    experiment: ExperimentRef | None = Field(
        None, description="The A/B test variant this user is in, when one is running.")
    items: list[RecommendedItem] = Field(
        description="Never an item the user already interacted with, an unavailable item, "
                    "or an excluded one. Users without history get the most popular items.")


#: Requests may describe the moment with a few scalar values (device, location, hour).
MAX_CONTEXT_KEYS = 50
ContextKey = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                              pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
ContextValue = Annotated[
    StrictBool | Annotated[StrictInt, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00]*$")] | None,
    Field(union_mode="left_to_right")]


class _Selection(BaseModel):
    """What a request body may ask of a list: its length, the moment, and its selection
    (the same as the query parameters of ``GET /recommendations/{user_id}``)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=1_000, description="How many items to return.")
    context: Annotated[dict[ContextKey, ContextValue], Field(max_length=MAX_CONTEXT_KEYS)] = \
        Field(default_factory=dict, description="The moment: device, location, hour, ...")
    filter: str | None = Field(None, max_length=MAX_EXPRESSION_LENGTH,
                               description="Keep only items where this expression holds.")
    boost: list[Annotated[str, StringConstraints(max_length=MAX_EXPRESSION_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_BOOSTS,
        description="`EXPRESSION:FACTOR` each: scale the scores of matching items.")
    exclude: list[Id] = Field(default_factory=list, max_length=1_000,
                              description="Item ids to leave out.")


class SessionRequest(_Selection):
    """An anonymous visitor: what they looked at so far in this session."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "items": ["i7", "i9"], "k": 5, "context": {"device": "mobile"},
        "filter": "price < 100", "boost": ['"shoes" in categories:1.5']}]})

    items: list[Id] = Field(
        default_factory=list, max_length=1_000,
        description="Items seen so far, oldest first; each counts as a view. Empty: the "
                    "most popular items.")
    session_id: Id | None = Field(None, description="Recorded in the served log.")
    model: str | None = Field(None, max_length=256,
                              description="A version number or model/recipe name; default: "
                                          "the serving version.")
    diversity: float | None = Field(None, ge=0, le=1, description="Trade relevance for "
                                    "variety (0 keeps the scorer's order); default: the "
                                    "recipe's.")
    novelty: float | None = Field(None, ge=0, le=1, description="Favour less popular items "
                                  "(0 off); default: the recipe's.")
    max_per_category: int | None = Field(None, ge=1, le=1_000, description="At most this "
                                         "many items of one category; default: the "
                                         "recipe's.")
    revenue: float | None = Field(None, ge=0, le=1, description="Mix expected revenue "
                                  "(price x relevance) into the order; default: the "
                                  "placement's, else the recipe's.")
    explain: bool = Field(False, description="Add a `reason` to each item.")
    explore: float | None = Field(None, ge=0, le=1, description="Share of slots a bandit "
                                  "fills to learn; default: the placement's, else the "
                                  "`exploration_share` setting.")
    new_arrivals: float | None = Field(
        None, ge=0, le=1, description="Share of slots given to new arrivals; default: the "
                                      "placement's, else the `new_arrivals_share` setting.")
    placement: str | None = Field(None, pattern=PLACEMENT_NAME.pattern,
                                  description="Where the list is shown (`GET /placements`); "
                                              "`k` defaults to the placement's.")


class SimilarRequest(_Selection):
    """Items like several at once (a cart), with the selection of a list."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "items": ["i7", "i9"], "k": 5, "filter": "price < 100",
        "exclude": ["i3"]}]})

    items: list[Id] = Field(min_length=1, max_length=100,
                            description="The items (a cart): each weighs the same.")
    kind: SimilarityKind = Field(
        "model", description="How similarity is measured: `model`, the serving model's own; "
        "`content`, title, text and categories; `co_views`, users who touched both; "
        "`bought_together`, purchases in the same session (or by the same user within a "
        "day), as stored now.")


class PopularItems(_Response):
    """The most popular, or trending, items (of a category), best first."""

    category: str | None
    days: float
    items: list[ScoredItem]


class SimilarToItems(_Response):
    """Items most similar to several items, best first (those items left out)."""

    item_ids: list[str]
    items: list[ScoredItem]


class SimilarUser(_Response):
    """One user like another."""

    user_id: str
    score: float = Field(description="Cosine of the two histories (who touched what).")
    rank: int = Field(ge=1)


class SimilarUsers(_Response):
    """Users whose histories are most like one user's, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "u1", "users": [{"user_id": "u7", "score": 0.61, "rank": 1}]}]})

    user_id: str
    users: list[SimilarUser]


class SimilarItems(_Response):
    """Items most similar to one item, best first (the item itself left out)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "item_id": "i7", "items": [{"item_id": "i9", "score": 0.82, "rank": 1}]}]})

    item_id: str
    items: list[ScoredItem]


class ServingModel(_Response):
    """The model version a service answers with."""

    name: str
    version: int | None
    trained_at: datetime | None = Field(description="When the model was fitted (UTC).")


class Health(_Response):
    """Whether the service can answer, and with what."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "ok", "store": "postgresql://tailored:***@db/tailored", "events": 100000,
        "model": {"name": "item_knn", "version": 3, "trained_at": "2024-05-01T12:00:00Z"},
        "detail": None,
    }]})

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="`degraded` when the registry's active model cannot be loaded, "
                    "`unavailable` when the store does not answer.")
    store: str | None = Field(None, description="The store URL, password masked (for an "
                              "`admin` key only, as are `events` and the `detail` of a "
                              "failure).")
    events: int | None = Field(None, description="Events in the store (null when it does "
                                                 "not answer).")
    model: ServingModel | None = Field(
        description="The model serving recommendations; null until one is trained.")
    detail: str | None = Field(None, description="What is wrong, when not ok.")


class ModelVersionInfo(_Response):
    """One trained version in the model registry."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": 3, "name": "item_knn", "created_at": "2024-05-01T12:00:00Z",
        "active": True, "metrics": {"ndcg@10": 0.21, "recall@10": 0.34},
        "details": {"events": 100000, "users": 943, "items": 1682},
    }]})

    version: int
    name: str
    created_at: datetime
    active: bool = Field(description="Whether the registry marks it as the version to serve.")
    metrics: dict[str, float | None] = Field(
        description="Offline validation metrics recorded at training.")
    details: dict[str, Any] = Field(description="Training config and data summary.")

    @classmethod
    def of(cls, version: ModelVersion) -> ModelVersionInfo:
        return cls(version=version.version, name=version.name, created_at=version.created_at,
                   active=version.active, metrics=dict(version.metrics),
                   details=dict(version.details))


class ModelVersions(_Response):
    """Every version in the registry, oldest first."""

    active: int | None = Field(description="The version the registry marks active.")
    serving: int | None = Field(description="The version this process answers with now "
                                            "(follows `active` within a few seconds).")
    versions: list[ModelVersionInfo]
    erasures_pending: int = Field(
        0, description="Erasures whose users a model still carries at item level (item "
                       "factors, learned similarities, trees): a retraining replaces it "
                       "by `erasure_retrain_due`. Their user-level rows are gone already.")
    erasure_retrain_due: datetime | None = Field(
        None, description="When the oldest pending erasure's retraining is due.")


class Promotion(_Response):
    """The outcome of promoting a version."""

    serving: ModelVersionInfo = Field(description="The version now active and serving.")
    previous: int | None = Field(
        description="The version served before, to promote again for a rollback.")


def scored_items(frame: pd.DataFrame, item_column: str = "item_id") -> list[ScoredItem]:
    """Rows of a model's top-k frame (``item_column``, ``score``, ``rank``) as items."""
    return [ScoredItem(item_id=str(item), score=float(score), rank=int(rank))
            for item, score, rank in zip(frame[item_column], frame["score"], frame["rank"],
                                         strict=True)]


# ---- catalog and profiles: request bodies with limits, and answers ---------------------

#: Limits on what one item or user may hold over HTTP (a body is at most max_body_bytes).
MAX_TITLE_LENGTH = 1_000
MAX_TEXT_LENGTH = 100_000
MAX_CATEGORIES = 100

# No NUL (PostgreSQL text cannot hold it); other control characters are fine in prose.
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_LENGTH, pattern=r"^[^\x00]*$")]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=r"^[^\x00]*$")]
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                                 pattern=r"^[^\x00-\x1f\x7f]+$")]
AttributeValue = Annotated[
    StrictBool | StrictInt | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_TEXT, pattern=r"^[^\x00]*$")]
    | None,
    Field(union_mode="left_to_right")]
Attributes = Annotated[dict[AttributeName, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]
Categories = Annotated[list[Id], Field(max_length=MAX_CATEGORIES)]


_CONSENT_HELP = (
    "The purposes the user consents to: `true`/`false` for every purpose, or an object by "
    "purpose (`personalization`: answers from their history and training on it; "
    "`analytics`: their answers counted in experiments, CTR and the dashboard; others "
    "are recorded for you). Only the purposes sent change; left out, consent stays as "
    "recorded (granted for a new user).")
ConsentIn = StrictBool | Annotated[dict[Purpose, StrictBool],
                                   Field(max_length=MAX_CONSENT_PURPOSES)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("attributes", check_fields=False)
    @classmethod
    def _safe_integers(cls, attributes: dict[str, Any] | None) -> dict[str, Any] | None:
        for name, value in (attributes or {}).items():
            if isinstance(value, int) and not isinstance(value, bool) \
                    and abs(value) > MAX_SAFE_INTEGER:
                raise ValueError(f"attribute {name!r}: integers are at most 2**53 in size "
                                 "(send large numbers as text)")
        return attributes


class ItemFields(_Request):
    """An item's content, as ``PUT /items/{item_id}`` replaces it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "title": "Trail running shoe", "text": "Light, with a grippy sole.",
        "categories": ["shoes", "running"], "attributes": {"price": 89.9, "brand": "acme"},
        "available": True}]})

    title: Title = ""
    text: Text = ""
    categories: Categories = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict,
                                   description="Scalars: text, numbers, booleans.")
    available: StrictBool = Field(True,
                                  description="False hides it from every recommendation.")
    created_at: datetime | None = None


class CatalogItem(ItemFields):
    """An item with its id, as ``POST /items`` takes them in a batch."""

    item_id: Id


class ItemPatch(_Request):
    """Some fields of an item; ``attributes`` are merged into the stored ones and a null
    attribute removes it (JSON merge patch)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "available": False, "attributes": {"price": 79.9, "promo": None}}]})

    # Optional, not nullable (a null is refused, naming the field): leave a field out to
    # keep it. Only created_at may be cleared with null.
    title: Title = Field(None)  # type: ignore[assignment]
    text: Text = Field(None)  # type: ignore[assignment]
    categories: Categories = Field(None)  # type: ignore[arg-type]
    attributes: Attributes = Field(None)  # type: ignore[arg-type]
    available: StrictBool = Field(None)  # type: ignore[assignment]
    created_at: datetime | None = None

    def changes(self) -> dict[str, Any]:
        """The fields sent, as the store's ``update`` takes them."""
        return self.model_dump(exclude_unset=True)


class UserFields(_Request):
    """A user's profile, as ``PUT /users/{user_id}`` replaces it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "attributes": {"age_band": "25-34", "location": "Berlin"}, "consent": True}]})

    attributes: Attributes = Field(default_factory=dict)
    consent: ConsentIn | None = Field(None, description=_CONSENT_HELP)


class Profile(UserFields):
    """A user with their id, as ``POST /users`` takes them in a batch."""

    user_id: Id


class UserPatch(_Request):
    """Some fields of a profile; ``attributes`` are merged, a null attribute removes it."""

    attributes: Attributes = Field(None)  # type: ignore[arg-type]
    consent: ConsentIn = Field(None, description=_CONSENT_HELP)  # type: ignore[assignment]

    def changes(self) -> dict[str, Any]:
        """The fields sent, as the store's ``update`` takes them."""
        return self.model_dump(exclude_unset=True)


class Upserted(_Response):
    """What a batch write did."""

    received: int = Field(description="Records in the request, all now stored.")


class ItemOut(_Response):
    """An item as stored."""

    item_id: str
    title: str
    text: str
    categories: list[str]
    attributes: dict[str, Any]
    available: bool
    created_at: datetime | None

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(**item.model_dump())


class UserOut(_Response):
    """A profile as stored."""

    user_id: str
    attributes: dict[str, Any]
    consent: dict[str, bool] = Field(description="The purposes recorded, granted or not; a "
                                     "purpose not listed is granted.")

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**user.model_dump())


class ConsentChangeOut(_Response):
    """One change of consent."""

    purpose: str
    granted: bool
    changed_at: datetime


class ConsentOut(_Response):
    """A user's consent now, by purpose, and every change that led there."""

    user_id: str
    consent: dict[str, bool] = Field(description="Every purpose tailored knows and each "
                                     "one recorded, granted or not.")
    history: list[ConsentChangeOut] = Field(description="Every change, oldest first.")


class ErasureOut(_Response):
    """What an erasure did."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "erased": 1, "deleted": {"events": 42, "profile": 1, "served": 7,
                                 "consent_changes": 2},
        "models": {"3": {"users": 1, "exact": False}},
        "retrain_due": "2026-12-07T16:00:00+00:00",
        "audit": [{"erasure_id": 9, "user_hash": "5be0…"}], "seconds": 0.12}]})

    erased: int = Field(description="Users erased.")
    deleted: dict[str, int] = Field(description="Rows deleted, by kind.")
    models: dict[str, dict[str, int | bool]] = Field(
        description="Per registered version: `users`, how many of the erased users its "
                    "artifact held (now rewritten without them), and `exact`, whether "
                    "nothing they shaped is left in it.")
    retrain_due: datetime | None = Field(
        description="When a retraining will have replaced the models whose item-level "
                    "state the users shaped; null when every model forgot them exactly.")
    audit: list[dict[str, int | str]] = Field(
        description="The audit records: their id and the keyed hash of the user id.")
    seconds: float = Field(description="How long the erasure took.")


class Rollback(_Response):
    """The outcome of a rollback."""

    serving: ModelVersionInfo = Field(description="The version now active and serving.")
    rolled_back: int | None = Field(description="The version that served before.")


# ---- API keys ---------------------------------------------------------------------------

class KeyRequest(_Request):
    """A key to create."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "shop-backend",
                                                               "scopes": ["write"]}]})

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)] = Field(
        description="read (recommendations, items), write (also events, catalog, users), "
                    "admin (also models and keys).")


class KeyInfo(_Response):
    """A key as listed (never its secret)."""

    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(key_id=key.key_id, name=key.name, scopes=list(key.scopes),
                   created_at=key.created_at, revoked_at=key.revoked_at, active=key.active)


class CreatedKey(KeyInfo):
    """A new key, with its secret: shown this once, store it now."""

    secret: str = Field(description="Send as `Authorization: Bearer <secret>`.")


class TokenRequest(_Request):
    """How long a user token should last."""

    ttl_seconds: int = Field(3600, ge=60, le=MAX_TTL_SECONDS,
                             description="Lifetime in seconds (at most a day).")


class UserToken(_Response):
    """A token bound to one user, for a page or an app to send instead of an API key."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "u42", "token": "tu1.eyJzdWIiOiJ1NDIiLCJleHAiOjE3MDAwMDM2MDB9.3q2...",
        "expires_at": "2024-05-01T13:00:00Z"}]})

    user_id: str
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime
