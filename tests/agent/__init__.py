"""Tests of agent (a subpackage of tests: see tests/__init__.py)."""
