"""Recipes: what is trained and served, as named stages in a TOML file.

A recipe lets a user change the pipeline without code. The simplest names one model::

    name = "als-with-promotions"

    [model]
    name = "als"
    factors = 64

    [[rules]]
    name = "berlin promo"
    when = 'user.location == "Berlin"'
    pin = ["promo-berlin"]

A full pipeline names its stages, candidates -> ranker -> rerankers -> rules::

    name = "ranked"

    [[candidates]]              # candidate sources (tailored.ranking.CandidateSource)
    model = "als"
    n = 100

    [[candidates]]
    name = "recent"
    model = "item_knn"
    recent_items = 5            # item-kNN of the user's last 5 items
    n = 30

    [ranker]                    # lambdarank (LightGBM) or stacking (logistic regression)
    kind = "lambdarank"
    n_estimators = 200
    features = { context = true }

    [[rerankers]]               # tailored.ranking.diversify, in order
    kind = "diversify"
    diversity = 0.2
    max_per_category = 4

``[model]`` may also be a hybrid (``weighted``, ``switching``, ``cascade``) with its
parts as tables. ``[model]`` and ``[ranker]``/``[[candidates]]`` are alternatives: the
ranker stages compile to the ``ranked`` (or ``stacked``) model. Rules adjust the scores
the re-rankers start from (an excluded item never returns; a pinned one enters with the
top relevance). Re-rankers that learn online (exploration) are the service's job and are
refused here with a note saying so.

Shipped recipes live in ``recipes/`` (``hybrid``, ``ranked``, ...): :func:`find_recipe`
finds one by name (``tailored train --pipeline ranked``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tailored.errors import InvalidDataError
from tailored.models import MODELS, Recommender, RuleBased, create
from tailored.ranking import Reranked, RerankerStage

#: ``[ranker] kind`` -> the registered model it builds.
RANKER_KINDS = {"lambdarank": "ranked", "stacking": "stacked"}
#: Where shipped recipes are looked up by name: ./recipes, then the source tree's.
RECIPE_DIRECTORIES = (Path("recipes"), Path(__file__).resolve().parents[3] / "recipes")


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
    """A named recipe: a model (or candidates and a ranker), business rules, re-rankers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    model: ModelStage
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    ranker: dict[str, Any] | None = None
    rerankers: list[RerankerStage] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _ranker_stages_make_the_model(cls, document: Any) -> Any:
        if not isinstance(document, dict):
            return document
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
        return {**document, "model": {"name": RANKER_KINDS[kind], **params}}

    @model_validator(mode="after")
    def _stages_build(self) -> Recipe:
        if self.rules or self.rerankers:  # rejected at load time, with the position of the error
            self.build()
        return self

    def build(self) -> Recommender:
        """An unfitted recommender that follows the recipe."""
        model = (RuleBased(rules=self.rules, base=self.model.name,
                           base_params=self.model.params) if self.rules
                 else create(self.model.name, **self.model.params))
        if not self.rerankers:
            return model
        return Reranked(base=model.name, base_params=model.config.model_dump(mode="json"),
                        rerankers=list(self.rerankers))


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


def shipped_recipes() -> dict[str, Path]:
    """Recipes that can be named (``--pipeline NAME``): file stem -> path."""
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
    >>> find_recipe("hybrid").model.name
    'weighted'
    """
    recipes = shipped_recipes()
    if name not in recipes:
        raise InvalidDataError(f"no pipeline named {name!r}; shipped pipelines: "
                               f"{sorted(recipes) or 'none found'} (or pass --recipe FILE)")
    return load_recipe(recipes[name])
