"""Tests of load (a subpackage of tests: see tests/__init__.py)."""
