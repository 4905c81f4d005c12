"""Tests of lab (a subpackage of tests: see tests/__init__.py)."""
