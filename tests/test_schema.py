"""The records' bounds: what an event, item or user may hold, wherever it comes from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tailored.schema import (
    MAX_ATTRIBUTES,
    MAX_CONTEXT_KEYS,
    Event,
    EventWeights,
    Item,
    User,
)


def refusal(model: type[Any], **fields: Any) -> tuple[str, str]:
    """The one field refused and pydantic's message for it."""
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    [error] = caught.value.errors()
    return ".".join(map(str, error["loc"])), error["msg"]


def event(**fields: Any) -> dict[str, Any]:
    return {"user_id": "u1", "item_id": "i1", **fields}


# -- value --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e308, -1e308, 1_000_000.5, -2e6])
def test_a_value_beyond_a_million_either_side_is_refused(value: float) -> None:
    field, message = refusal(Event, **event(value=value))

    assert field == "value"
    assert "out of range: at most 1,000,000 either side of 0 (MAX_EVENT_VALUE)" in message


@pytest.mark.parametrize("value", [1_000_000, -1_000_000, 0, 19.99])
def test_values_within_the_bound_are_kept(value: float) -> None:
    assert Event(**event(value=value)).value == value


@pytest.mark.parametrize(("value", "said"), [
    (True, "should be a number such as 4.5, not true"),
    ("4.5", "should be a number such as 4.5, not the text '4.5' (send numbers without "
            "quotes)"),
])
def test_a_value_must_be_a_number_not_text_or_a_boolean(value: object, said: str) -> None:
    assert refusal(Event, **event(value=value)) == ("value", said)


def test_a_rating_needs_a_value_of_at_least_zero() -> None:
    assert refusal(Event, **event(event_type="rating")) == (
        "value", "a rating needs a value, the rating itself (such as 4.5)")
    assert refusal(Event, **event(event_type="rating", value=-1)) == (
        "value", "a rating is at least 0, got -1.0")
    assert Event(**event(event_type="rating", value=0)).value == 0
    assert Event(**event(event_type="purchase", value=-5)).value == -5  # a refund, say


# -- timestamp ----------------------------------------------------------------------------


@pytest.mark.parametrize(("timestamp", "said"), [
    ("9999-12-31T00:00:00Z", "9999-12-31T00:00:00+00:00 is in the future: the latest event "
                             "time accepted is 1 day past now"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00 is before 1970-01-01, the earliest "
                             "event time accepted"),
    ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59+00:00 is before 1970-01-01"),
])
def test_timestamps_before_1970_or_after_tomorrow_are_refused(timestamp: str,
                                                              said: str) -> None:
    field, message = refusal(Event, **event(timestamp=timestamp))

    assert field == "timestamp"
    assert message.startswith(said)


def test_timestamps_up_to_a_day_ahead_are_kept_for_clock_skew() -> None:
    soon = datetime.now(UTC) + timedelta(hours=23)

    assert Event(**event(timestamp=soon)).timestamp == soon
    assert Event(**event(timestamp="1970-01-01T00:00:00Z")).timestamp.year == 1970


# -- context and attributes ---------------------------------------------------------------


def test_a_context_of_200000_keys_is_refused_at_once() -> None:
    context = {f"k{n}": n for n in range(200_000)}

    assert refusal(Event, **event(context=context)) == (
        "context", "context has 200000 keys; at most 64 are allowed")


@pytest.mark.parametrize(("context", "said"), [
    ({"k" * 65: 1}, f"context key {'k' * 65!r:.37}... must be 1 to 64 characters without "
                    "control characters (tabs, line breaks, NUL) or lone surrogates"),
    ({"": 1}, "context key '' must be 1 to 64 characters without control characters "
              "(tabs, line breaks, NUL) or lone surrogates"),
    ({"a\nb": 1}, "context key 'a\\nb' must be 1 to 64 characters without control "
                  "characters (tabs, line breaks, NUL) or lone surrogates"),
    ({"\udfff": 1}, "context key '\\udfff' must be 1 to 64 characters without control "
                    "characters (tabs, line breaks, NUL) or lone surrogates"),
    ({"page": "x" * 1_025}, "context value of 'page' is 1,025 characters long; text values "
                            "are at most 1,024"),
    ({"page": "a\ud800"}, "context value of 'page' holds a lone surrogate such as \\ud800, "
                          "which is not text (send valid UTF-8)"),
])
def test_context_keys_and_text_are_bounded(context: dict[str, Any], said: str) -> None:
    assert refusal(Event, **event(context=context)) == ("context", said)


def test_a_context_at_the_bounds_is_kept() -> None:
    context = {f"{n:0>64}": "x" * 1_024 for n in range(MAX_CONTEXT_KEYS)}

    assert Event(**event(context=context)).context == context


@pytest.mark.parametrize("model", [Item, User])
def test_attributes_have_the_bounds_the_api_always_had(model: type[Any]) -> None:
    key = "item_id" if model is Item else "user_id"
    too_many = {f"a{n}": n for n in range(MAX_ATTRIBUTES + 1)}
    assert refusal(model, **{key: "x", "attributes": too_many}) == (
        "attributes", "attributes has 101 keys; at most 100 are allowed")
    assert refusal(model, **{key: "x", "attributes": {"a" * 129: 1}})[0] == "attributes"
    assert refusal(model, **{key: "x", "attributes": {"notes": "x" * 10_001}})[1] == (
        "attributes value of 'notes' is 10,001 characters long; text values are at most "
        "10,000")
    assert refusal(model, **{key: "x", "attributes": {"big": 2**53 + 1}})[0] == "attributes"


# -- event types --------------------------------------------------------------------------


def test_the_event_types_are_the_known_ones_and_the_custom_ones() -> None:
    weights = EventWeights(custom={"Wishlist": 3.0})

    assert weights.event_types() == ("view", "click", "add_to_cart", "purchase", "rating",
                                     "impression", "wishlist")
    weights.check_event_type("wishlist")
    with pytest.raises(ValueError) as caught:
        EventWeights().check_event_type("wishlist")
    assert str(caught.value) == (
        "unknown event type 'wishlist'; the event types are view, click, add_to_cart, "
        "purchase, rating, impression; to add one, give it a weight in "
        "event_weights.custom: wishlist = 1.0 under [event_weights.custom] in tailored.toml, "
        "or "
        "TAILORED_EVENT_WEIGHTS__CUSTOM='{\"wishlist\": 1.0}'")


def test_a_misspelt_event_type_gets_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"unknown event type 'purchse' \(did you mean "
                                         r"'purchase'\?\)"):
        EventWeights().check_event_type("purchse")


def test_the_custom_types_named_in_the_environment_are_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tailored.settings import Settings

    monkeypatch.setenv("TAILORED_EVENT_WEIGHTS__CUSTOM", '{"wishlist": 3.0}')

    Settings().event_weights.check_event_type("wishlist")
