"""POST /events: what users did, one event or a batch, acknowledged once durable."""

from __future__ import annotations

import email.message
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import Discriminator, Field, Tag

from tailored.schema import (
    EARLIEST_EVENT_TIME,
    KNOWN_EVENT_TYPES,
    MAX_CONTEXT_KEY_LENGTH,
    MAX_CONTEXT_KEYS,
    MAX_CONTEXT_TEXT,
    MAX_EVENT_VALUE,
    Event,
    EventWeights,
)

from ..auth import AUTH_RESPONSES, UserWriteAccess, require_scope
from ..deps import SettingsDep, StoreDep
from ..errors import check_batch_size
from ..metrics import MetricsDep
from ..schemas import EventsReceipt

router = APIRouter(tags=["events"], responses=AUTH_RESPONSES)


def _shape(payload: Any) -> str:
    return "batch" if isinstance(payload, list) else "event"


#: One event object, or a JSON list of them. Validation errors name the shape and the
#: field: ``["body", "event", "user_id"]`` or ``["body", "batch", 3, "value"]``.
EventsBody = Annotated[
    Annotated[Event, Tag("event")]
    | Annotated[list[Event], Tag("batch"), Field(min_length=1)],
    Discriminator(_shape),
]

_EXAMPLES = {
    "one event": {"summary": "One event", "value": {
        "event_id": "e-1001", "user_id": "u42", "item_id": "i7", "event_type": "purchase",
        "timestamp": "2024-05-01T12:00:00Z", "context": {"device": "mobile"}}},
    "impressions": {"summary": "What a recommendation showed", "value": [
        {"user_id": "u42", "item_id": "i7", "event_type": "impression",
         "context": {"recommendation_id": "8c1e0f5b2a7d4e6f9b3c1a2d4e5f6a7b", "position": 1}},
        {"user_id": "u42", "item_id": "i2", "event_type": "impression",
         "context": {"recommendation_id": "8c1e0f5b2a7d4e6f9b3c1a2d4e5f6a7b", "position": 2}}]},
    "batch": {"summary": "A batch", "value": [
        {"user_id": "u42", "item_id": "i7", "event_type": "view"},
        {"user_id": "u42", "item_id": "i9", "event_type": "rating", "value": 4.5}]},
}


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


async def check_batch(request: Request, settings: SettingsDep) -> None:
    """Refuse a body that is not JSON (415) or a batch that is too big (413) early,
    before each event in it is validated."""
    body = await request.body()
    if not body:
        return  # the body parameter reports a missing body
    if not _is_json(request.headers.get("content-type")):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send events as JSON with the header `Content-Type: application/json`")
    try:
        payload = await request.json()  # parsed once, FastAPI reuses it
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # the body parameter reports where the JSON is broken
    if isinstance(payload, list):
        check_batch_size(len(payload), settings.max_batch_events, "events")


def check_event_types(body: Event | list[Event], weights: EventWeights) -> None:
    """Refuse (422, like any invalid field) events of a type the settings do not name,
    each located as pydantic locates a field: ``["body", "batch", 3, "event_type"]``."""
    batch = isinstance(body, list)
    errors = []
    for position, event in enumerate(body if isinstance(body, list) else [body]):
        try:
            weights.check_event_type(event.event_type)
        except ValueError as error:
            loc = ("body", "batch", position, "event_type") if batch \
                else ("body", "event", "event_type")
            errors.append({"type": "unknown_event_type", "loc": loc, "msg": str(error),
                           "input": event.event_type})
    if errors:
        raise RequestValidationError(errors)


@router.post(
    "/events",
    summary="Record one event or a batch",
    description=(
        "Accepts one event object or a JSON list of events (at most `max_batch_events`). "
        "Answers only after every event is durable in the store, so an acknowledged event "
        "survives a crash, and the next recommendation for its user already counts it. "
        "Idempotent by `event_id`: an event whose id is stored already is skipped and "
        "counted as a duplicate. An event without an id gets one derived from its content, "
        "timestamp included; the timestamp defaults to the time of arrival, so send an "
        "`event_id` or a `timestamp` for a retried request to be recognised. "
        "Status 201 when at least one event was new, 200 when all were duplicates. A "
        "`write` key sends anyone's events, a user token its own user's only.\n\n"
        "**Bounds** (422 beyond, naming the field): `event_type` is one of the known "
        f"types ({', '.join(KNOWN_EVENT_TYPES)}) or a key of the `event_weights.custom` "
        "setting; `value` is a JSON number (not text, not a boolean) of at most "
        f"{MAX_EVENT_VALUE:,.0f} either side of 0, and a `rating` has one, at least 0; "
        f"`timestamp` lies between {EARLIEST_EVENT_TIME.date()} and 1 day from now; "
        f"`context` holds at most {MAX_CONTEXT_KEYS} keys of up to {MAX_CONTEXT_KEY_LENGTH} "
        f"characters, with text values of up to {MAX_CONTEXT_TEXT:,} characters.\n\n"
        "**Impressions and attribution**: send what was shown as `event_type: "
        "\"impression\"` events, one per shown item, with `context.recommendation_id` "
        "(from the recommendation answer) and `context.position` (its rank). "
        "Impressions weigh 0: they never count as interest, never mark an item as seen "
        "and never enter training, but they record exposure for click-through rates and "
        "off-policy evaluation. Clicks, cart adds and purchases that came from a "
        "recommendation carry `context.recommendation_id` too, so they are attributed "
        "to the answer (and model version, experiment variant) in the served log."
    ),
    response_model=EventsReceipt,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": EventsReceipt, "description": "Every event was stored already."},
        413: {"description": "The batch holds more than `max_batch_events` events."},
        415: {"description": "The body is not sent as `application/json`."},
    },
    # The key first: a caller without one learns nothing about the body.
    dependencies=[Depends(require_scope("write", user_tokens=True)), Depends(check_batch)],
)
def post_events(
    body: Annotated[EventsBody, Body(openapi_examples=_EXAMPLES)], caller: UserWriteAccess,
    store: StoreDep, settings: SettingsDep, response: Response, metrics: MetricsDep,
) -> EventsReceipt:
    check_event_types(body, settings.event_weights)
    events = [body] if isinstance(body, Event) else body
    if caller.user_id is not None and any(e.user_id != caller.user_id for e in events):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=(
            f"this user token is bound to user {caller.user_id!r}: it may send that "
            "user's events only"))
    received = len(events)
    if settings.events_without_consent == "discard":
        withheld = set(store.users.without_consent(list({e.user_id for e in events})))
        events = [event for event in events if event.user_id not in withheld]
    discarded = received - len(events)
    stored = store.events.add(events)  # one transaction; durable on return
    metrics.events_ingested.labels("stored").inc(stored)
    metrics.events_ingested.labels("duplicate").inc(len(events) - stored)
    metrics.events_ingested.labels("discarded").inc(discarded)
    if stored == 0:
        response.status_code = status.HTTP_200_OK
    return EventsReceipt(received=received, stored=stored,
                         duplicates=len(events) - stored, discarded=discarded)
