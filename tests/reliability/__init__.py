"""Tests of reliability (a subpackage of tests: see tests/__init__.py)."""
