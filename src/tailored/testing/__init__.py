"""Reusable test suites and data: run ``RecommenderContract`` against every model."""

from tailored.testing.contract import RecommenderContract
from tailored.testing.data import checkerboard, group_of

__all__ = ["RecommenderContract", "checkerboard", "group_of"]
