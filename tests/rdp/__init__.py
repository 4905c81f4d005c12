"""Tests of rdp (a subpackage of tests: see tests/__init__.py)."""
