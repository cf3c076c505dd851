"""Placements: where a list is shown (``home``, ``product-page``, ``email-weekly``), each a
pipeline version with its own overrides.

A placement names the version that serves it (a recipe name or a version number;
default: the serving version), the list length, a filter and boosts, the re-ranker
knobs, the shares of exploration and of new arrivals, and what fills a list the
pipeline leaves short (``fallback``). They are kept in the store, versioned, and
written over REST (``PUT /placements/{name}``, admin) or from a file
(``tailored placements load placements.toml``)::

    [home]
    description = "Homepage, for you"
    k = 12
    new_arrivals = 0.1          # a tenth of the slots: new items, by content
    explore = 0.05
    diversity = 0.2
    revenue = 0.3               # relevance mixed with expected revenue (price x relevance)

    [product-page]
    model = "item_knn"
    filter = "in_stock == true"
    fallback = "trending"

A request names one (``GET /recommendations/{user_id}?placement=home``); its own
parameters narrow the placement's (its filter and boosts apply after the placement's)
and replace its knobs. Answers, metrics, the exploration bandit and experiments are
per placement.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tailored.errors import InvalidDataError
from tailored.expressions import ExpressionError
from tailored.ranking import RuleSet
from tailored.store import PlacementVersion, Store

from .pipeline import Overrides
from .recipe import problems, read_toml

#: The most items a list may have, and the bounds of a list's expressions.
MAX_K = 1_000
MAX_EXPRESSION_LENGTH = 2_000
MAX_BOOSTS = 20
#: At most this many placements exist at once (each is a label of the served metrics).
MAX_PLACEMENTS = 100
PLACEMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PLACEMENT_NAME_HELP = ("a placement name is 1-64 letters, digits, '_', '.' or '-', starting "
                       "with a letter or digit, e.g. home or product-page")

Fallback = Literal["popular", "trending", "none"]
_SURROGATE = re.compile("[\ud800-\udfff]")


class Placement(BaseModel):
    """One placement's configuration (see the module notes); every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(default="", max_length=1_000)
    model: str | None = Field(
        default=None, min_length=1, max_length=256,
        description="The version serving it: a recipe or model name (its active version, "
                    "else its newest) or a version number; default: the serving version.")
    k: int = Field(default=10, ge=1, le=MAX_K,
                   description="List length when a request gives none.")
    filter: str | None = Field(default=None, max_length=MAX_EXPRESSION_LENGTH,
                               description="Keep only items where this holds.")
    boosts: list[str] = Field(default_factory=list, max_length=MAX_BOOSTS,
                              description="`EXPRESSION:FACTOR` each.")
    diversity: float | None = Field(default=None, ge=0, le=1)
    novelty: float | None = Field(default=None, ge=0, le=1)
    max_per_category: int | None = Field(default=None, ge=1, le=MAX_K)
    revenue: float | None = Field(
        default=None, ge=0, le=1,
        description="Weight of expected revenue (price x relevance) against relevance.")
    explore: float | None = Field(default=None, ge=0, le=1,
                                  description="Share of slots the bandit fills.")
    new_arrivals: float | None = Field(
        default=None, ge=0, le=1,
        description="Share of slots given to items added after the model was trained, "
                    "chosen by content.")
    fallback: Fallback = Field(
        default="none",
        description="What fills the slots the pipeline leaves empty (a strict filter, a "
                    "scorer that knows few items for the user): the most popular or "
                    "trending items of the last week that pass the filter, or nothing.")

    @field_validator("description", "model", "filter", "boosts", mode="before")
    @classmethod
    def _whole_characters(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and _SURROGATE.search(text) for text in texts):
            raise ValueError("holds a lone surrogate, which is not a character; send UTF-8 "
                             "text")
        return value

    @model_validator(mode="after")
    def _expressions_parse(self) -> Placement:
        if any(len(boost) > MAX_EXPRESSION_LENGTH for boost in self.boosts):
            raise ValueError(f"a boost is at most {MAX_EXPRESSION_LENGTH} characters")
        try:
            self.rules()
        except ExpressionError as error:
            raise ValueError(f"{error}") from None
        return self

    def rules(self) -> RuleSet:
        """The placement's filter and boosts as rules."""
        return RuleSet.from_request(self.filter, self.boosts)

    def overrides(self, request: Overrides) -> Overrides:
        """A request's overrides within this placement: the request's filter and boosts
        apply after the placement's (a request narrows a placement, never widens it),
        its knobs replace the placement's."""
        def knob(name: str) -> Any:
            asked = getattr(request, name)
            return getattr(self, name) if asked is None else asked

        return Overrides(self.rules() + request.rules, request.exclude,
                         diversity=knob("diversity"), novelty=knob("novelty"),
                         max_per_category=knob("max_per_category"), revenue=knob("revenue"),
                         pool=request.pool)

    def spec(self) -> dict[str, Any]:
        """What is stored: the fields that differ from the defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)


def save_placement(store: Store, name: str, placement: Placement, *, by: str = ""
                   ) -> PlacementVersion:
    """Store ``placement`` as the current version of ``name`` (a new version only when
    it changed); refused beyond :data:`MAX_PLACEMENTS`."""
    check_placement_name(name)
    if store.placements.get(name) is None and len(store.placements.list()) >= MAX_PLACEMENTS:
        raise InvalidDataError(f"there are {MAX_PLACEMENTS} placements already, the most "
                               "there may be; delete one first")
    return store.placements.put(name, placement.spec(), by=by)


def stored_placement(version: PlacementVersion) -> Placement:
    """The placement a stored version describes."""
    return Placement(**(version.spec or {}))


def check_placement_name(name: str) -> str:
    if not PLACEMENT_NAME.match(name):
        raise InvalidDataError(f"{name!r}: {PLACEMENT_NAME_HELP}")
    return name


def load_placements(path: str | Path) -> dict[str, Placement]:
    """The placements of a TOML file, one table each; errors name the file, the
    placement and the field."""
    file = Path(path)
    document = read_toml(file, "placements file")
    if len(document) > MAX_PLACEMENTS:
        raise InvalidDataError(f"placements file {file}: {len(document)} placements, at most "
                               f"{MAX_PLACEMENTS}")
    placements: dict[str, Placement] = {}
    for name, spec in document.items():
        if not isinstance(spec, dict):
            raise InvalidDataError(f"placements file {file}: {name!r} must be a table "
                                   f"([{name}] with its fields), not a value")
        try:
            placements[check_placement_name(name)] = Placement(**spec)
        except InvalidDataError as error:
            raise InvalidDataError(f"placements file {file}: {error}") from None
        except ValidationError as error:
            raise InvalidDataError(f"placements file {file}, [{name}]: "
                                   f"{problems(error, name)}") from None
    return placements


__all__ = ["MAX_BOOSTS", "MAX_EXPRESSION_LENGTH", "MAX_K", "MAX_PLACEMENTS", "Fallback",
           "Placement", "check_placement_name", "load_placements", "save_placement",
           "stored_placement"]
