"""Repository-wide pytest options. ``--spawnhang-variants`` selects a slice of the regression
matrix; it is declared here, not in regression/conftest.py, because pytest parses the command line
before it loads a sub-directory's conftest, and ``pytest --spawnhang --spawnhang-variants EXPR``
with no path must work."""

from __future__ import annotations

import pytest

from regression.variants import FilterError, parse_filter

OPTION = "--spawnhang-variants"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("spawnhang-matrix", "spawnhang variant matrix").addoption(
        OPTION,
        dest="spawnhang_variants",
        metavar="EXPR",
        default=None,
        help='run only the variants matching EXPR, e.g. "backend=gloo and nprocs=2", '
        '"placement=rank0,group and not launcher=torchrun2"; fields: backend, nprocs, '
        "placement, start_method, launcher, integration",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A typo in the expression must stop the run, not quietly select nothing.
    text = config.getoption("spawnhang_variants")
    if text:
        try:
            parse_filter(text)
        except FilterError as exc:
            raise pytest.UsageError(f"{OPTION}: {exc}") from exc
