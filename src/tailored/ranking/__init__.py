"""The ranking stage: candidate sources, hybrids, the learned ranker, re-rankers and
explanations, between the models and the pipeline."""
