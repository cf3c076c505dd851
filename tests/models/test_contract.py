"""Every model keeps the shared contract."""

from tailored.models import ALS, ItemKNN, Popular, Recommender
from tailored.testing import RecommenderContract


class TestPopular(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return Popular()


class TestPopularDecayed(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return Popular(half_life_days=1.0, count="weight")


class TestItemKNN(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNN(neighbors=20)


class TestALS(RecommenderContract):
    def make_model(self) -> Recommender:
        return ALS(factors=2, iterations=15, alpha=5.0)  # two groups: rank 2
