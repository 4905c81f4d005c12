"""Tests of license_server (a subpackage of tests: see tests/__init__.py)."""
