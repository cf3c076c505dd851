"""Offline evaluation: splits come from ``tailored.dataset``; metrics and comparisons here."""

from tailored.evaluation.metrics import MAP, NDCG, Coverage, HitRate, RankingMetric, Recall
from tailored.evaluation.offline import ModelResult, compare, evaluate_model

__all__ = ["MAP", "NDCG", "Coverage", "HitRate", "ModelResult", "RankingMetric", "Recall",
           "compare", "evaluate_model"]
