"""Tests of directory (a subpackage of tests: see tests/__init__.py)."""
