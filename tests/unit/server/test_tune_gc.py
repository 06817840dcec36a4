"""A serving process tunes CPython's cyclic collector once its imports are done (bench/analysis.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cerebelum_operator.server import GC_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_the_objects_that_exist_are_frozen_and_the_young_generation_is_collected_less_often(restored_gc: None) -> None:
    gc.unfreeze()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLD
    assert GC_THRESHOLD[0] > 700, "less often than CPython's default"
