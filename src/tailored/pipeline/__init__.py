"""From a trained model to answers: recipes (what to train) and the live recommender."""

from tailored.pipeline.live import LiveRecommender
from tailored.pipeline.recipe import ModelStage, Recipe, load_recipe

__all__ = ["LiveRecommender", "ModelStage", "Recipe", "load_recipe"]
