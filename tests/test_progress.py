"""Sending progress: off a terminal one timestamped line at most every 10 s; on a narrow terminal the live
line keeps the count and the ETA."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bulksend import output
from bulksend.commands.send import SendProgress
from bulksend.engine import RunStats

EPOCH = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now


def stats_at(clock: Clock, sent: int) -> RunStats:
    stats = RunStats(clock=clock, started=EPOCH)
    stats.sent = stats.attempts = stats.credits = sent
    return stats


@pytest.fixture
def plain_stderr(monkeypatch):
    console = Console(width=200, force_terminal=False, record=True, color_system=None, file=io.StringIO())
    monkeypatch.setattr(output, "stderr", lambda: console)
    return console


def test_off_a_terminal_progress_is_one_timestamped_line_at_most_every_10_seconds(plain_stderr):
    clock = Clock()
    progress = SendProgress("spring", 1000, quiet=False, clock=clock)
    assert not progress.live
    with progress:
        for seconds, sent in [(1, 10), (4, 40), (10.9, 109), (11, 110), (20, 200), (21, 210), (31, 310)]:
            clock.now = EPOCH + seconds
            progress(stats_at(clock, sent))
    assert plain_stderr.export_text().splitlines() == [
        "2023-11-14T22:13:21Z spring: 10/1,000 · sent 10 · failed 0 · retrying 0 · 10/s · 10 credits · ETA 1m39s",
        "2023-11-14T22:13:31Z spring: 110/1,000 · sent 110 · failed 0 · retrying 0 · 10/s · 110 credits · ETA 1m29s",
        "2023-11-14T22:13:41Z spring: 210/1,000 · sent 210 · failed 0 · retrying 0 · 10/s · 210 credits · ETA 1m19s",
        "2023-11-14T22:13:51Z spring: 310/1,000 · sent 310 · failed 0 · retrying 0 · 10/s · 310 credits · ETA 1m09s",
    ]


def test_quiet_prints_nothing(plain_stderr):
    clock = Clock()
    with SendProgress("spring", 10, quiet=True, clock=clock) as progress:
        progress(stats_at(clock, 5))
    assert plain_stderr.export_text() == ""


@pytest.mark.parametrize("width", [40, 60, 120])
def test_on_a_narrow_terminal_the_bar_keeps_the_count_and_the_eta(monkeypatch, width):
    console = Console(width=width, force_terminal=True, record=True, color_system=None, file=io.StringIO())
    monkeypatch.setattr(output, "stderr", lambda: console)
    clock = Clock()
    progress = SendProgress("spring-sale-2026-newsletter", 12000, quiet=False, clock=clock)
    assert progress.live
    with progress:
        clock.now = EPOCH + 30
        progress(stats_at(clock, 1200))  # 40/s: 10,800 left take 4m30s
        console.export_text(clear=True)  # the frames drawn so far; stopping draws the last one again
    frame = console.export_text().splitlines()
    assert len(frame) == 1
    last = frame[0].rstrip()
    assert len(last) <= width
    assert "1,200/12,000" in last
    assert last.endswith("ETA 0:04:30")
    assert last.startswith("spring-sale")
