"""The health record's open counter map: whatever names the agent's counters have (bus names,
decoder reasons), the body stays within the contract's schema and no count disappears."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.service.health import (
    MAX_COUNTERS,
    HealthPolicy,
    RateWindow,
    bounded,
    counter_key,
    interval_counters,
    significant,
    total_counters,
)
from msp_protocol.records import body_from_json

KEY = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=90), st.integers(0, 2**40), max_size=150))
def test_any_counters_make_a_valid_health_body(counters: dict[str, int]) -> None:
    errors = bounded(counters)
    assert len(errors) <= MAX_COUNTERS
    assert all(KEY.match(k) for k in errors)
    assert sum(errors.values()) == sum(counters.values())
    body = {"uptime_s": 1.0, "queue_depth": 0, "queue_bytes": 0, "frames_per_s": 0.0,
            "errors": errors, "evicted": 0, "refused": 0}  # fmt: skip
    assert body_from_json("health", body).errors == errors  # type: ignore[union-attr]


def test_counter_keys_are_made_schema_safe() -> None:
    assert counter_key("bus.can0.frames") == "bus.can0.frames"
    assert counter_key("decode.CAN-1.bad_length") == "decode.can_1.bad_length"
    assert counter_key("0x7E8.timeout") == "x0x7e8.timeout"


def test_rate_window_reports_the_rise_since_the_previous_call() -> None:
    window = RateWindow()
    assert window.delta({"a": 5, "b": 1}) == {"a": 5, "b": 1}
    assert window.delta({"a": 7, "b": 1, "c": 2}) == {"a": 2, "b": 0, "c": 2}


def test_interval_counters_give_rates_per_bus_and_leave_out_what_did_not_move() -> None:
    delta = {"bus.can0.frames": 500, "bus.can1.frames": 0, "decode.can0.bad_length": 0,
             "scoring.nan": 3}  # fmt: skip
    frames, counters = interval_counters(delta, 2.0)
    assert frames == 500
    assert counters == {"bus.can0.frames": 500, "bus.can1.frames": 0, "scoring.nan": 3,
                        "bus.can0.frames_per_s": 250, "bus.can1.frames_per_s": 0}  # fmt: skip


def test_totals_since_start_are_reported_not_differences() -> None:
    totals = {"bus.can0.frames": 1500, "decode.can0.bad_length": 7, "scoring.nan": 0}
    frames, counters = total_counters(totals, {"bus.can0.frames": 500}, 2.0)
    assert frames == 500  # the interval's, for frames_per_s
    assert counters == {"bus.can0.frames": 1500, "decode.can0.bad_length": 7,
                        "bus.can0.frames_per_s": 250}  # fmt: skip


def test_health_records_only_on_a_change_or_at_the_longest_interval() -> None:
    policy = HealthPolicy(max_interval_s=3600)
    quiet = {"bus.can0.frames": 100, "process.rss_kib": 40_000, "uplink.connected": 1,
             "uplink.acked_seq": 3, "records.event": 2, "queue.frames": 4}  # fmt: skip
    assert policy.due(quiet, 0.0) == "first"
    policy.wrote(quiet, 0.0)
    # frames, memory, the uplink's progress and new events are running, not news
    busier = quiet | {"bus.can0.frames": 90_000, "bus.can0.frames_per_s": 500,
                      "process.rss_kib": 41_000, "uplink.acked_seq": 9, "records.event": 5,
                      "queue.frames": 0}  # fmt: skip
    assert policy.due(busier, 300.0) is None
    assert policy.due(busier, 3599.0) is None
    assert policy.due(busier, 3600.0) == "interval"
    policy.wrote(busier, 3600.0)
    for change in ({"uplink.connected": 0}, {"decode.can0.bad_length": 1},
                   {"records.refused": 1}, {"bus.can0.dropped": 3}, {"card.reader": 0}):
        assert policy.due(busier | change, 3900.0) == "changed", change
    assert policy.due(busier, 3900.0, evicted=2) == "outbox"
    assert policy.due(busier, 3900.0) is None
    policy.max_interval_s = 200  # reloaded
    assert policy.due(busier, 3900.0) == "interval"


def test_only_what_an_operator_acts_on_is_significant() -> None:
    counters = {"bus.can0.frames": 1, "bus.can0.frames_per_s": 1, "obd.samples": 1,
                "process.cpu_ms": 1, "queue.card": 1, "uplink.published": 1,
                "uplink.acked": 1, "uplink.acked_seq": 1, "uplink.messages": 1,
                "uplink.last_ack_age_s": 1, "records.trip": 1, "records.invalid": 1,
                "obd.failed": 1, "outbox.evicted_total": 1, "card.errors": 1}  # fmt: skip
    assert set(significant(counters)) == {"records.invalid", "obd.failed",
                                          "outbox.evicted_total", "card.errors"}  # fmt: skip
