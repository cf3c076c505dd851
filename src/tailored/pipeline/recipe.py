"""Recipes: a pipeline's stages in a TOML file, so a user changes it without code.

The simplest names one scorer::

    name = "als-with-promotions"

    [model]
    model = "als"
    params = { factors = 64 }

    [[rules]]
    name = "berlin promo"
    when = 'user.location == "Berlin"'
    pin = ["promo-berlin"]

A model and its parameters are spelt ``model = NAME`` plus ``params = {...}`` here, in
hybrids' parts and in candidate sources alike (``[model] name = "als"`` with the
parameters beside it, the older spelling, is still read). A learned ranker names its
stages, candidates -> ranker, instead of ``[model]``::

    name = "ranked"

    [[candidates]]              # candidate sources (tailored.ranking.CandidateSource)
    model = "als"
    n = 100

    [ranker]                    # lambdarank (LightGBM) or stacking (logistic regression)
    kind = "lambdarank"
    n_estimators = 200
    features = { context = true }

    [[rerankers]]               # tailored.ranking.rerankers, in order
    kind = "diversify"
    revenue = 0.3               # 0-1: weight of expected revenue (price x relevance)
    novelty = 0.1               # 0-1: weight of unpopular items
    diversity = 0.2             # 0-1: MMR, weight of items unlike those above
    max_per_category = 4

    pool = 100                  # candidates the re-rankers choose from (top level)

A ``diversify`` stage is one weighted mix: each of the best ``pool`` candidates is
worth ``(1 - revenue) * relevance + revenue * expected_revenue`` (relevance: the
scorer's score min-max scaled within the user's pool; expected revenue: the item's
``price`` attribute times relevance, scaled by the pool's largest), then novelty
mixes in unpopularity and MMR trades that value against similarity to the items
already picked (:class:`~tailored.ranking.RerankerStage`). Every knob at 0 keeps the
scorer's order; a request's knobs replace the first stage's.

``[model]`` may also be a hybrid (``weighted``, ``switching``, ``cascade``) with its
parts as tables. The ranker stages compile to the ``ranked`` (or ``stacked``) scorer.
:meth:`Recipe.build` gives a :class:`~tailored.pipeline.Pipeline`, trained and
registered under the recipe's ``name`` (what REST answers and the dashboard shows).
Re-rankers that learn online (exploration) are the service's stage and are refused
here with a note saying so.

Shipped recipes live in ``recipes/`` (``hybrid``, ``ranked``, ...): :func:`find_recipe`
finds one by name (``tailored train --recipe ranked``; a path to a file works too).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tailored.errors import InvalidDataError
from tailored.models import create
from tailored.ranking import Part, RerankerStage

from .pipeline import Pipeline, PipelineConfig

#: ``[ranker] kind`` -> the registered model it builds.
RANKER_KINDS = {"lambdarank": "ranked", "stacking": "stacked"}
#: Where shipped recipes are looked up by name: ./recipes, then the source tree's.
RECIPE_DIRECTORIES = (Path("recipes"), Path(__file__).resolve().parents[3] / "recipes")


class Recipe(BaseModel):
    """A named recipe: a model (or candidates and a ranker), business rules, re-rankers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="default", min_length=1, max_length=256)
    model: Part
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    ranker: dict[str, Any] | None = None
    rerankers: list[RerankerStage] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    pool: int = Field(default=100, ge=1, le=5000)

    @classmethod
    def of(cls, model: str, name: str | None = None, **params: Any) -> Recipe:
        """The recipe of one model family with ``params`` (a one-stage pipeline)."""
        return cls(name=name or model, model=Part(model=model, params=params))

    @model_validator(mode="before")
    @classmethod
    def _ranker_stages_make_the_model(cls, document: Any) -> Any:
        if not isinstance(document, dict):
            return document
        model = document.get("model")
        if isinstance(model, dict) and "name" in model and "model" not in model:
            # The older spelling: [model] name = "als" with the parameters beside it.
            params = {k: v for k, v in model.items() if k != "name"}
            document = {**document, "model": {"model": model["name"], "params": params}}
        staged = document.get("ranker") is not None or bool(document.get("candidates"))
        if not staged:
            return document
        if document.get("model") is not None:
            raise ValueError("give either [model] or the ranker stages ([[candidates]] and "
                             "[ranker]), not both")
        ranker = dict(document.get("ranker") or {})
        kind = ranker.pop("kind", "lambdarank")
        if kind not in RANKER_KINDS:
            raise ValueError(f"ranker.kind {kind!r} is unknown; choose one of "
                             f"{sorted(RANKER_KINDS)}")
        if "sources" in ranker:
            raise ValueError("list the ranker's sources as [[candidates]] tables, not "
                             "ranker.sources")
        params = dict(ranker)
        if document.get("candidates"):
            params["sources"] = document["candidates"]
        return {**document, "model": {"model": RANKER_KINDS[kind], "params": params}}

    @model_validator(mode="after")
    def _stages_build(self) -> Recipe:
        self.pipeline_config()  # rules and re-rankers refused at load time, with where
        return self

    def pipeline_config(self) -> PipelineConfig:
        try:
            return PipelineConfig(name=self.name, rules=self.rules, rerankers=self.rerankers,
                                  pool=self.pool)
        except ValidationError as error:
            raise ValueError("; ".join(str(e["msg"]) for e in error.errors())) from None

    def build(self) -> Pipeline:
        """An unfitted pipeline that follows the recipe."""
        return Pipeline(create(self.model.model, **self.model.params), self.pipeline_config())


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file; errors name the file and the offending field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> _ = path.write_text('[model]\\nname = "item_knn"\\nneighbors = 20\\n')
    >>> load_recipe(path).build().scorer
    ItemKNN(neighbors=20, similarity='cosine', weighting='none', shrinkage=0.0, \
min_support=1, binary=False, bm25_k1=1.2, bm25_b=0.75)
    """
    file = Path(path)
    document = read_toml(file, "recipe")
    try:
        return Recipe(**document)
    except ValidationError as error:
        raise InvalidDataError(f"recipe {file}: {problems(error, 'recipe')}") from None


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """A TOML file's document; an ``InvalidDataError`` says when it is missing or bad."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidDataError(f"{what} {file} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidDataError(f"{what} {file} is not valid TOML: {error}") from None


def problems(error: ValidationError, whole: str) -> str:
    """A validation error's problems on one line, each at its field (``whole``: none)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}"
                     for e in error.errors())


def shipped_recipes() -> dict[str, Path]:
    """Recipes that can be named (``--recipe NAME``): file stem -> path."""
    found: dict[str, Path] = {}
    for directory in RECIPE_DIRECTORIES:
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def find_recipe(name: str) -> Recipe:
    """The shipped recipe ``name`` (``recipes/<name>.toml``), loaded and checked.

    Examples
    --------
    >>> find_recipe("hybrid").model.model
    'weighted'
    """
    recipes = shipped_recipes()
    if name not in recipes:
        raise InvalidDataError(f"no recipe named {name!r}; shipped recipes: "
                               f"{sorted(recipes) or 'none found'} (or pass a recipe file)")
    return load_recipe(recipes[name])
