"""The test suite, as a package: each folder is a subpackage, so shared helpers are plain
imports (`from tests.agent import fakes`, `from tests.license_server import harness`) that
mypy checks like any module. pytest runs with `--import-mode=importlib` and the repository
root on sys.path (`pythonpath` in pyproject.toml), so `tests.*` and `tools.*` resolve the
same way from pytest, mypy and an editor.
"""
