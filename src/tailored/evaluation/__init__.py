"""Offline evaluation: metrics as accumulators, beyond-accuracy and fairness audits,
statistics, and model comparison. Splits come from ``tailored.dataset``."""

from tailored.evaluation.beyond import (
    AveragePopularity,
    CosineDistance,
    ExposureGini,
    FairnessReport,
    IntraListDiversity,
    ItemPopularity,
    JaccardDistance,
    ListMetric,
    Novelty,
    Personalization,
    beyond_accuracy_metrics,
    exposure_by_group,
    fairness_report,
    gini_coefficient,
    metric_by_group,
    popularity_tiers,
)
from tailored.evaluation.metrics import (
    F1,
    MAP,
    MRR,
    NDCG,
    Coverage,
    HitRate,
    PerUserMetric,
    Precision,
    RankingMetric,
    Recall,
)
from tailored.evaluation.offline import ModelResult, compare, evaluate_model
from tailored.evaluation.statistics import (
    ConfidenceInterval,
    PairedTest,
    bootstrap_ci,
    paired_test,
)

__all__ = [
    "F1", "MAP", "MRR", "NDCG", "AveragePopularity", "ConfidenceInterval", "CosineDistance",
    "Coverage", "ExposureGini", "FairnessReport", "HitRate", "IntraListDiversity",
    "ItemPopularity", "JaccardDistance", "ListMetric", "ModelResult", "Novelty",
    "PairedTest", "PerUserMetric", "Personalization", "Precision", "RankingMetric", "Recall",
    "beyond_accuracy_metrics", "bootstrap_ci", "compare", "evaluate_model",
    "exposure_by_group", "fairness_report", "gini_coefficient", "metric_by_group",
    "paired_test", "popularity_tiers",
]
