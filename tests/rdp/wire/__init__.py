"""Tests of the sans-IO RDP core on the wire (a subpackage of tests: see tests/__init__.py)."""
