"""Every model keeps the shared contract."""

from tailored.models import ALS, ItemKNN, Popular, Recommender, Trending, UserKNN
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


class TestItemKNNJaccard(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNN(similarity="jaccard", min_support=2, neighbors=10)


class TestItemKNNBM25(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNN(weighting="bm25", shrinkage=2.0)


class TestUserKNN(RecommenderContract):
    def make_model(self) -> Recommender:
        return UserKNN(neighbors=10)


class TestUserKNNJaccardTfidf(RecommenderContract):
    def make_model(self) -> Recommender:
        return UserKNN(similarity="jaccard", weighting="tfidf", neighbors=10)


class TestTrending(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return Trending(window_days=0.05, baseline_days=0.1)
