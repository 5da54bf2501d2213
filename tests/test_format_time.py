"""``format_time`` formats each second once for listings; it must print what the plain
``isoformat`` rendering prints for every instant, time zone and century."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from factflow_storage.metadata import format_time


def _reference(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_random_instants_across_the_cached_years_and_outside():
    rng = random.Random(16)
    for _ in range(50_000):
        moment = datetime.fromtimestamp(rng.uniform(-3e9, 8e9), timezone.utc)
        assert format_time(moment) == _reference(moment)


def test_edges_of_a_second_and_of_the_cached_range():
    for year in (1, 1969, 1970, 1971, 2024, 2199, 2200, 9999):
        for micro in (0, 999, 1000, 999_499, 999_999):
            for second in (0, 59):
                moment = datetime(year, 12, 31, 23, 59, second, micro, tzinfo=timezone.utc)
                assert format_time(moment) == _reference(moment)


def test_same_second_different_milliseconds_and_other_zones():
    base = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)
    seen = [format_time(base + timedelta(microseconds=step * 1000)) for step in range(1000)]
    assert seen == [_reference(base + timedelta(microseconds=step * 1000)) for step in range(1000)]
    east = datetime(2024, 5, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(east) == "2024-05-01T10:00:00.123Z"
