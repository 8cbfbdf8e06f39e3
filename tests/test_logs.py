"""Console lines of workflow jobs: each names its job; long loops report progress."""

from __future__ import annotations

import logging

from cxr14.logs import CONSOLE, console_progress, job_label, log_to


def test_a_console_line_names_its_job_and_the_log_has_everything(tmp_path, capsys):
    log = tmp_path / "logs" / "evaluate_subgroups" / "r18" / "holdout" / "seed0.log"
    log.parent.mkdir(parents=True)
    with log_to(str(log)):
        logging.getLogger("x").info("largest shortfall: sex F", extra=CONSOLE)
        logging.getLogger("x").info("only in the log")
    err = capsys.readouterr().err
    assert err == "[evaluate_subgroups r18/holdout/seed0] largest shortfall: sex F\n"
    assert "only in the log" in log.read_text() and "largest shortfall" in log.read_text()
    assert job_label("logs/summarize_models.log") == "summarize_models"
    assert job_label("/elsewhere/mine.log") == "mine"


def test_progress_lines_are_throttled(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("CXR14_PROGRESS_SECONDS", "0")
    assert list(console_progress(range(4), 4, "images")) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("images: 1/4 (25%), about ") and lines[-1].startswith("images: 3/4")
    assert len(lines) == 3  # none after the last item: the loop's own line follows
    caplog.clear()
    monkeypatch.setenv("CXR14_PROGRESS_SECONDS", "20")
    list(console_progress(range(1000), 1000, "images"))  # done within 20 s: silent
    list(console_progress(range(4), 4, "images", show=False))
    assert not caplog.records
