"""The connection ceiling follows the process's open-files limit."""

from __future__ import annotations

import resource

from tslic.runtime.fdlimit import RESERVE, connection_ceiling, file_limit, raise_file_limit


def test_the_ceiling_is_the_setting_or_the_file_limit_minus_the_reserve() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert file_limit() == 1024
        assert connection_ceiling(15_000) == 1024 - RESERVE
        assert connection_ceiling(100) == 100
        assert connection_ceiling(15_000, reserve=24) == 1000
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_raising_goes_up_to_the_hard_limit_and_never_down() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lower = min(soft, 512)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
        now = raise_file_limit()
        expected = None if hard == resource.RLIM_INFINITY else hard
        assert now == expected
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
