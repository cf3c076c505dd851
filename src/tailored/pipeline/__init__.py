"""The pipeline that produces every list, the recipes that build it, the live
recommender that runs it against the store, and forgetting users in saved artifacts."""

from tailored.pipeline.forget import forget_in_artifact
from tailored.pipeline.live import LiveRecommender, with_new_arrivals
from tailored.pipeline.pipeline import (
    NO_OVERRIDES,
    Overrides,
    Pipeline,
    PipelineConfig,
    Ranked,
    TopList,
)
from tailored.pipeline.placement import (
    Placement,
    load_placements,
    save_placement,
    stored_placement,
)
from tailored.pipeline.recipe import Recipe, find_recipe, load_recipe

__all__ = ["NO_OVERRIDES", "LiveRecommender", "Overrides", "Pipeline", "PipelineConfig",
           "Placement", "Ranked", "Recipe", "TopList", "find_recipe", "forget_in_artifact",
           "load_placements", "load_recipe", "save_placement", "stored_placement",
           "with_new_arrivals"]
