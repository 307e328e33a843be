"""Benchmarks (not shipped in the wheel): ``python -m bench``."""
