"""The one in-process timer of the benchmarks: median seconds a call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_per_call(fn: Callable[[], object], repeats: int, inner: int) -> float:
    """``inner`` warm-up calls, then the median over ``repeats`` rounds of ``inner`` calls
    of the seconds one call took."""
    for _ in range(inner):
        fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)
