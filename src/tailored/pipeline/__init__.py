"""From a trained model to answers: the live recommender (named stage recipes come later)."""

from tailored.pipeline.live import LiveRecommender

__all__ = ["LiveRecommender"]
