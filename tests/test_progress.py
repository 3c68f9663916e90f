"""A long run says how far it has got: on a terminal as a bar, in a log (CI, a batch system) as a
line every few seconds of wall time; and the model reports progress on the work it has done, not
only at fixed fractions of simulated time."""

from __future__ import annotations

import time

from sim import run
from sim.cli import BatchProgress, LazyProgressBar
from tests.builders import exponential, queue_scenario


def test_a_run_reports_progress_along_the_work_it_does():
    # About 100,000 arrivals, each several events: the model reports every 65,536 events.
    scenario = queue_scenario(arrival_rate=1000, service=exponential(0.0005), duration=100)
    fractions = []
    run(scenario, progress=fractions.append)
    assert len(fractions) >= 4
    assert fractions == sorted(fractions)
    assert 0 < fractions[0] < 0.5
    assert fractions[-1] == 1.0


def test_a_run_logs_a_line_with_the_time_left_when_stderr_is_not_a_terminal(capsys):
    progress = LazyProgressBar("simulating flash_sale", delay_s=0.0, every_s=0.0)
    progress(0.25)
    progress.close()
    line = capsys.readouterr().err.strip()
    assert line.startswith("simulating flash_sale: 25.0% of the simulated time after 0 s")
    assert "about 0 s left" in line


def test_a_run_stays_silent_for_its_first_seconds(capsys):
    progress = LazyProgressBar("simulating quick", delay_s=60.0, every_s=0.0)
    progress(0.5)
    progress.close()
    assert capsys.readouterr().err == ""


def test_a_batch_logs_the_runs_finished_every_few_seconds_when_stderr_is_not_a_terminal(capsys):
    progress = BatchProgress(total=3, label="sweep", every_s=0.05)
    progress(1)
    progress(1)
    time.sleep(0.3)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines, "a line every 0.05 s for 0.3 s"
    assert all(line.startswith("sweep: 2/3 runs finished after ") for line in lines)
    time.sleep(0.2)
    assert capsys.readouterr().err == "", "closed: no more lines"
