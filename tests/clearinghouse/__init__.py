"""Tests of clearinghouse (a subpackage of tests: see tests/__init__.py)."""
