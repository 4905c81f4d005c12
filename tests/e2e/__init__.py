"""Tests of e2e (a subpackage of tests: see tests/__init__.py)."""
