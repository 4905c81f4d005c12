"""Tests of conformance (a subpackage of tests: see tests/__init__.py)."""
