"""Webhooks over REST, for an ``admin`` key: subscribe, list, remove, and read the
delivery log.

A subscription's secret is answered once, at creation: every delivery to it is signed
with it (``X-Tailored-Signature``, see :mod:`tailored.jobs.webhooks`), so the receiver
must keep it; nothing shows it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from tailored.store import Store, WebhookDelivery, WebhookSubscription
from tailored.store.webhooks import (
    MAX_DELIVERIES_LISTED,
    MAX_URL_LENGTH,
    URL_PATTERN,
    DeliveryStatus,
    EventKind,
)

from ..auth import AUTH_RESPONSES, require_scope
from ..deps import StoreDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=AUTH_RESPONSES,
                   dependencies=[Depends(require_scope("admin"))])

SubscriptionId = Annotated[str, Path(max_length=64, description="A webhook's id, from "
                                     "GET /webhooks.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such webhook."}}


class WebhookRequest(BaseModel):
    """A new subscription: where to POST, and which events."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://shop.example/hooks/tailored", "events": ["model.promoted"]}]})

    url: str = Field(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN, description=(
        "An http:// or https:// URL, printable ASCII (an international domain name in "
        "punycode). Redirects are not followed."))
    events: list[EventKind] = Field(min_length=1, max_length=16, description=(
        "The event kinds to send: model.promoted, drift.alert, experiment.verdict, "
        "recommendations.ready."))


class WebhookInfo(BaseModel):
    """A subscription as listed: never its secret."""

    subscription_id: str
    url: str
    events: list[EventKind]
    created_at: datetime
    removed_at: datetime | None = Field(description="Null while active.")
    active: bool

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> WebhookInfo:
        return cls(subscription_id=subscription.subscription_id, url=subscription.url,
                   events=list(subscription.events), created_at=subscription.created_at,
                   removed_at=subscription.removed_at, active=subscription.active)


class CreatedWebhook(WebhookInfo):
    secret: str = Field(description="Signs every delivery (HMAC-SHA256); shown this once.")


class DeliveryInfo(BaseModel):
    """One event for one subscription, and what came of sending it."""

    delivery_id: str = Field(description="Sent as X-Tailored-Delivery, the same on every "
                                         "attempt.")
    subscription_id: str
    kind: EventKind
    event_id: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made so far (the one in flight included).")
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried "
                                                         "next; null once done.")
    last_status: int | None = Field(description="The last attempt's HTTP status.")
    last_error: str | None = Field(description="The last attempt's error class (no "
                                               "answer: ConnectError, ReadTimeout, ...).")
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any] = Field(description="The body sent: id, kind, created_at, "
                                                "data.")

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryInfo:
        return cls(delivery_id=delivery.delivery_id, subscription_id=delivery.subscription_id,
                   kind=delivery.kind, event_id=delivery.event_id, status=delivery.status,
                   attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at,
                   last_status=delivery.last_status, last_error=delivery.last_error,
                   created_at=delivery.created_at, updated_at=delivery.updated_at,
                   payload=delivery.payload)


def _found(store: Store, subscription_id: str) -> WebhookSubscription:
    """The subscription, while it is active: a removed one is a 404 like an unknown one
    (its log stays in the store: `tailored webhooks deliveries ID`)."""
    found = store.webhooks.get(subscription_id)
    if found is None or not found.active:
        removed = "" if found is None else (
            " any more: it was removed (its log is kept: `tailored webhooks deliveries "
            f"{subscription_id}`)")
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no webhook {subscription_id!r}{removed}; GET /webhooks lists them"))
    return found


@router.get("", summary="List webhooks", response_model=list[WebhookInfo],
            description="Every subscription, removed ones too, oldest first; never a secret.")
def list_webhooks(store: StoreDep) -> list[WebhookInfo]:
    return [WebhookInfo.of(subscription) for subscription in store.webhooks.list()]


@router.post("", summary="Subscribe a URL to events", response_model=CreatedWebhook,
             status_code=status.HTTP_201_CREATED,
             description="The answer holds the secret that signs every delivery, shown this "
                         "once. Events that happen from now on are sent.")
def create_webhook(request: WebhookRequest, store: StoreDep) -> CreatedWebhook:
    subscription, secret = store.webhooks.subscribe(request.url, request.events)
    return CreatedWebhook(**WebhookInfo.of(subscription).model_dump(), secret=secret)


@router.delete("/{subscription_id}", summary="Remove a webhook", response_model=WebhookInfo,
               description="Nothing more is sent to it; its pending deliveries fail. From "
                           "then on its routes are a 404; its delivery log stays in the "
                           "store (`tailored webhooks deliveries ID`).",
               responses=_NOT_FOUND)
def remove_webhook(subscription_id: SubscriptionId, store: StoreDep) -> WebhookInfo:
    _found(store, subscription_id)
    return WebhookInfo.of(store.webhooks.remove(subscription_id))


@router.get("/{subscription_id}/deliveries", summary="A webhook's delivery log",
            response_model=list[DeliveryInfo], responses=_NOT_FOUND,
            description="Its deliveries, newest first: status (pending, delivered, failed), "
                        "attempts, the last HTTP status or error, the next attempt.")
def list_deliveries(
    subscription_id: SubscriptionId, store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES_LISTED,
                                description="At most this many, the newest.")] = 100,
) -> list[DeliveryInfo]:
    _found(store, subscription_id)
    return [DeliveryInfo.of(d) for d in store.webhooks.deliveries(subscription_id,
                                                                  limit=limit)]
