"""Benchmarks: `python -m bench` runs them all; bench/README.md has the figures."""
