"""Synthetic sample data for demos, tests and benchmarks."""

from tailored.sample.shop import SampleShop, shop

__all__ = ["SampleShop", "shop"]
