"""Tests of runtime (a subpackage of tests: see tests/__init__.py)."""
