"""Tests of admin (a subpackage of tests: see tests/__init__.py)."""
