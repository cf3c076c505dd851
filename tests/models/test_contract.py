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


def test_als_fold_in_matches_implicit_and_training() -> None:
    """Our fold-in is implicit's own user step: same factors as recalculate_user."""
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares

    from tailored.testing import checkerboard

    data = checkerboard(n_users=30, n_items=16, seed=2)
    model = ALS(factors=4, iterations=10, alpha=3.0).fit(data)
    solver = AlternatingLeastSquares(factors=4, regularization=model.config.regularization,
                                     alpha=model.config.alpha)
    solver.user_factors, solver.item_factors = model.user_factors_, model.item_factors_
    history = model.user_items_[:5]
    expected = solver.recalculate_user(np.arange(5), model._confidence(history))
    np.testing.assert_allclose(model._fold_in(history), expected, rtol=1e-3, atol=1e-4)
