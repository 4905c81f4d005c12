"""Tests of protocol (a subpackage of tests: see tests/__init__.py)."""
