"""Features and preprocessing: true to the data, fitted on training rows, saved as arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from tailored.dataset import Dataset
from tailored.ranking import (
    PreprocessingConfig,
    Preprocessor,
    event_context,
    query_context,
)
from tailored.ranking.features import FeatureBuilder, FeatureConfig, _target_encoder, daypart


def test_event_context_reads_columns_and_context_dicts() -> None:
    events = pd.DataFrame({
        "timestamp": pd.to_datetime(["2026-01-05 08:30", "2026-01-10 21:00"], utc=True),
        "context": [{"device": "mobile"}, {"device": "desktop", "location": "Berlin"}]})
    context = event_context(events)
    assert context["hour"].tolist() == [8.0, 21.0]
    assert context["weekday"].tolist() == [0.0, 5.0]  # a Monday and a Saturday
    assert context["device"].tolist() == ["mobile", "desktop"]
    assert context["location"].tolist() == [None, "Berlin"]


def test_query_context_derives_hour_and_weekday_from_a_timestamp() -> None:
    frame = query_context({"timestamp": "2026-01-10T21:15:00+00:00", "device": "tablet"}, 2)
    assert frame["hour"].tolist() == [21.0, 21.0] and frame["weekday"].tolist() == [5.0, 5.0]
    assert daypart(np.array([0.0, 7.0, 13.0, 22.0, np.nan])).tolist() == [0, 1, 2, 3, -1]


def test_preprocessing_matches_the_fitted_sklearn_transformers() -> None:
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(200, 3))
    numeric[rng.random((200, 3)) < 0.1] = np.nan
    categorical = rng.choice(np.array(["a", "b", "c", None], dtype=object), size=(200, 1))
    target = rng.random(200)
    prep = Preprocessor(PreprocessingConfig(impute="mean", scale="zscore", encode="target"))
    train = prep.fit_transform(numeric, ["x", "y", "z"], categorical, ["kind"], target)
    imputed = SimpleImputer(strategy="mean").fit_transform(numeric)
    expected = StandardScaler().fit(imputed).transform(imputed)
    np.testing.assert_allclose(train[:, :3], expected)
    np.testing.assert_allclose(prep.transform(numeric, categorical)[:, :3], expected)
    encoder = _target_encoder()
    values = np.array(["\x00missing" if v is None else v for v in categorical[:, 0]])
    crossed = encoder.fit_transform(values[:, None], target)
    np.testing.assert_allclose(train[:, 3:], crossed)  # cross-fitted on training rows
    np.testing.assert_allclose(prep.transform(numeric, categorical)[:, 3:],
                               encoder.transform(values[:, None]))
    restored = Preprocessor(prep.config).restore(prep.arrays())
    np.testing.assert_allclose(restored.transform(numeric, categorical),
                               prep.transform(numeric, categorical))
    assert all(array.dtype != object for array in prep.arrays().values())


def test_unseen_categories_encode_as_nothing_or_the_mean() -> None:
    categorical = np.array([["a"], ["b"], ["a"]], dtype=object)
    onehot = Preprocessor(PreprocessingConfig(encode="onehot"))
    onehot.fit_transform(np.zeros((3, 0)), [], categorical, ["k"], np.array([1.0, 0, 1]))
    assert onehot.transform(np.zeros((1, 0)), np.array([["zzz"]], dtype=object)).tolist() == \
        [[0.0, 0.0]]


@pytest.fixture
def shop_like() -> Dataset:
    events = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2", "u3"],
        "item_id": ["shirt", "lamp", "shirt", "phone", "phone"],
        "timestamp": pd.to_datetime(["2026-01-01 20:00", "2026-01-02 09:00",
                                     "2026-01-02 21:00", "2026-01-03 10:00",
                                     "2026-01-03 11:00"], utc=True),
        "device": ["mobile", "desktop", "mobile", "desktop", "desktop"]})
    items = pd.DataFrame({"item_id": ["shirt", "lamp", "phone"],
                          "categories": [["clothing"], ["home"], ["electronics"]],
                          "price": [20.0, 35.0, 300.0]})
    return Dataset.from_frame(events, items=items)


def test_context_lift_follows_the_events(shop_like: Dataset) -> None:
    builder = FeatureBuilder(FeatureConfig()).fit(shop_like, shop_like.item_vocab.ids,
                                                  shop_like.user_vocab.ids)
    devices = list(builder.context_values_["device"])
    shirt = list(shop_like.item_vocab.ids).index("shirt")
    lift = builder.item_lift_["device"][shirt]
    assert lift[devices.index("mobile")] > 1 > lift[devices.index("desktop")]
    restored = FeatureBuilder(FeatureConfig()).restore(builder.arrays())
    np.testing.assert_allclose(restored.item_lift_["device"], builder.item_lift_["device"])
    assert restored.item_numeric_names_ == ["price"]
