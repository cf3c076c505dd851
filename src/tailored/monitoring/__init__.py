"""Measuring success online: A/B experiments, their statistics, off-policy estimates and
drift detection."""
