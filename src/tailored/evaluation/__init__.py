"""Offline evaluation: splits come from ``tailored.dataset``; metrics and comparisons here."""

from tailored.evaluation.metrics import NDCG, RankingMetric, Recall
from tailored.evaluation.offline import ModelResult, compare, evaluate_model

__all__ = ["NDCG", "ModelResult", "RankingMetric", "Recall", "compare", "evaluate_model"]
