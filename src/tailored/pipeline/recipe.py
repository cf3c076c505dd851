"""Recipes: a model and its parameters (and rules on top) chosen in a TOML file.

A recipe lets a user change what is trained and served without code::

    name = "als-with-promotions"

    [model]
    name = "als"
    factors = 64

    [[rules]]
    name = "berlin promo"
    when = 'user.location == "Berlin"'
    pin = ["promo-berlin"]

Later stages (candidate sources, a learned ranker, re-rankers) extend the same file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tailored.errors import InvalidDataError
from tailored.models import MODELS, Recommender, RuleBased, create


class ModelStage(BaseModel):
    """The model: its registered ``name`` and, beside it, its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _known_and_valid(self) -> ModelStage:
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}; choose one of {sorted(MODELS)}")
        MODELS[self.name].Config(**self.params)
        return self


class Recipe(BaseModel):
    """A named recipe: one model, optionally with business rules applied to its scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    model: ModelStage
    rules: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_parse(self) -> Recipe:
        if self.rules:  # rejected at load time, with the position of the error
            self.build()
        return self

    def build(self) -> Recommender:
        """An unfitted recommender that follows the recipe."""
        if self.rules:
            return RuleBased(rules=self.rules, base=self.model.name,
                             base_params=self.model.params)
        return create(self.model.name, **self.model.params)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file; errors name the file and the offending field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> _ = path.write_text('[model]\\nname = "item_knn"\\nneighbors = 20\\n')
    >>> load_recipe(path).build()
    ItemKNN(neighbors=20, similarity='cosine', weighting='none', shrinkage=0.0, \
min_support=1, binary=False, bm25_k1=1.2, bm25_b=0.75)
    """
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidDataError(f"recipe {file} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidDataError(f"recipe {file} is not valid TOML: {error}") from None
    try:
        return Recipe(**document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'recipe'}: {e['msg']}"
            for e in error.errors())
        raise InvalidDataError(f"recipe {file}: {problems}") from None
