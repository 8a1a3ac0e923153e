"""The variant matrix's collection: one test per variant and interpreter
(regression/environments.py), NCCL skipped without enough GPUs, wandb 0.10.31's interpreter
skipped when .venv-legacy is missing, and the slice chosen by ``--spawnhang-variants EXPR`` (the
option is declared in the root conftest.py; see docs/regression.md). The run ends with a line
that counts what was caught (regression/summary.py)."""

from __future__ import annotations

from functools import cache

import pytest

from regression.environments import environments
from regression.summary import MatrixSummary
from regression.variants import all_variants, parse_filter


@cache
def gpu_count() -> int:
    # Imported here, once, so that collecting gloo-only slices elsewhere stays torch-free.
    import torch

    return torch.cuda.device_count()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MatrixSummary(), "spawnhang-matrix-summary")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" not in metafunc.fixturenames:
        return
    params = []
    for env in environments():
        runs_here = parse_filter(env.variants)
        for variant in filter(lambda v: runs_here(v.fields()), all_variants()):
            marks = []
            if not env.exists():
                marks.append(pytest.mark.skip(reason=env.missing))
            elif variant.backend == "nccl" and gpu_count() < variant.nprocs:
                marks.append(pytest.mark.skip(
                    reason=f"nccl needs one GPU per rank: {variant.nprocs} ranks, "
                    f"torch.cuda.device_count() == {gpu_count()}"
                ))
            params.append(pytest.param(env, variant, id=f"{env.name}-{variant.id}", marks=marks))
    metafunc.parametrize(("environment", "variant"), params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    text = config.getoption("spawnhang_variants")
    if not text:
        return
    keep = parse_filter(text)
    selected, deselected = [], []
    for item in items:
        variant = getattr(item, "callspec", None) and item.callspec.params.get("variant")
        if variant is None or keep(variant.fields()):
            selected.append(item)
        else:
            deselected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
