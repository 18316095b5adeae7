"""Test harness: ``msp-agent run`` in this process with a python-can virtual bus fed from a
CAN log by a thread, as a CAN transceiver would feed a live bus.

    python -m tests.edge_agent.service.harness LOG CHANNEL SPEED HOLD_AT MARKER -- ARGS...

The feeder waits until the agent has opened its bus on CHANNEL, then sends the log's frames
at SPEED times their own pace, keeping their timestamps, up to HOLD_AT seconds into the log
(0: all of it); then it touches MARKER and leaves the bus silent. The agent's exit code is
this process's.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import can
from can.interfaces import virtual

from edge_agent import cli
from edge_agent.ingest import LogSource
from edge_agent.replay import paced


def feed(log: Path, channel: str, speed: float, hold_at: float, marker: Path) -> None:
    bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    while len(virtual.channels.get(channel, [])) < 2:  # ours and the agent's
        time.sleep(0.02)
    first: float | None = None
    for frame in paced(LogSource(log).frames(), speed):
        first = frame.timestamp if first is None else first
        if hold_at and frame.timestamp - first > hold_at:
            break
        bus.send(can.Message(timestamp=frame.timestamp, arbitration_id=frame.arbitration_id,
                             data=frame.data, is_extended_id=frame.is_extended_id))  # fmt: skip
    marker.write_text("sent\n")


def main() -> int:
    split = sys.argv.index("--")
    log, channel, speed, hold_at, marker = sys.argv[1:split]
    feeder = threading.Thread(
        target=feed, args=(Path(log), channel, float(speed), float(hold_at), Path(marker)),
        daemon=True,
    )
    feeder.start()
    return cli.main(sys.argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main())
