"""Progress of long fits (the ``progress`` setting): when it shows, what it shows, and that a
fit without it prints nothing."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time

import numpy as np
import pytest

import anykmeans
from anykmeans import _progress


def _data(n=3000, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.fixture
def terminal():
    """A real pseudo-terminal: a stream that is a tty, and a reader of what was written."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    stream = io.TextIOWrapper(io.FileIO(slave, "w"), write_through=True)

    def read() -> str:
        out = b""
        while select.select([master], [], [], 0.2)[0]:
            out += os.read(master, 1 << 16)
        return out.decode().replace("\r", "\n")

    yield stream, read
    stream.close()
    os.close(master)


def test_the_default_shows_nothing_where_no_one_watches(capsys):
    assert anykmeans.get_config()["progress"] == "auto"
    anykmeans.KMeans(4, n_init=2, random_state=0).fit(_data())
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_true_shows_runs_iterations_inertia_and_change(capsys):
    pytest.importorskip("tqdm")
    with anykmeans.config_context(progress=True):
        km = anykmeans.KMeans(4, n_init=2, random_state=0).fit(_data())
    err = capsys.readouterr().err
    assert "KMeans run 1/2" in err and "KMeans run 2/2" in err
    assert "k-means++" in err  # the seeding steps
    # The last state of each run: its final inertia and the iterations it ran.
    assert f"inertia {km.inertia_:.6g}, {km.n_iter_} iterations" in err
    assert f"{len(km.inertia_history_[1 - km._fit_stats['best_run']])} iterations" in err


def test_kmeans_parallel_steps_are_named_as_such(capsys):
    pytest.importorskip("tqdm")
    with anykmeans.config_context(progress=True):
        anykmeans.KMeans(4, init="k-means||", random_state=0).fit(_data())
    err = capsys.readouterr().err
    assert "KMeans: k-means||" in err and "k-means++" not in err


def test_plain_lines_name_the_seeding_step():
    stream = io.StringIO()
    progress = _progress.FitProgress(True, n_init=1, max_iter=10, name="KMeans", stream=stream)
    progress._use_tqdm = False
    progress.start_run(0)
    progress.seeding_round(7, 7)
    progress.seeding_step(3, 3)
    assert "KMeans: k-means|| step 7/7" in stream.getvalue()
    assert "KMeans: k-means++ center 3/3" in stream.getvalue()


def test_the_bar_shows_the_relative_change_of_the_inertia():
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = _progress.FitProgress(True, n_init=1, max_iter=10, name="KMeans", stream=stream)
    progress.iteration(0, 100.0)
    assert progress._bar.postfix == "inertia 100"
    time.sleep(0.06)  # the bar is brought up to date at most every 0.05 s
    progress.iteration(1, 90.0)
    assert progress._bar.postfix == "inertia 90 (-10.00%)" and progress._bar.n == 2
    progress.close()
    assert "inertia 90 (-10.00%)" in stream.getvalue()


def test_auto_shows_in_a_terminal_only_after_the_delay(monkeypatch, terminal):
    pytest.importorskip("tqdm")
    stream, read = terminal
    monkeypatch.setattr(sys, "stderr", stream)
    with anykmeans.config_context(progress="auto"):
        anykmeans.KMeans(4, random_state=0).fit(_data())
    assert "KMeans" not in read()  # a fit quicker than the delay shows nothing
    monkeypatch.setattr(_progress, "AUTO_DELAY", 0.0)
    with anykmeans.config_context(progress="auto"):
        km = anykmeans.KMeans(4, random_state=0, max_iter=7, tol=0).fit(_data())
    shown = read()
    assert "KMeans" in shown and f"{km.n_iter_} iterations" in shown


def test_auto_shows_nothing_on_a_pipe_even_for_long_fits(monkeypatch):
    monkeypatch.setattr(_progress, "AUTO_DELAY", 0.0)
    stream = io.StringIO()  # not a tty
    progress = _progress.FitProgress("auto", n_init=1, max_iter=5, name="KMeans", stream=stream)
    progress.iteration(0, 10.0)
    progress.end_run(1, 10.0)
    progress.close()
    assert not progress.enabled and stream.getvalue() == ""


def test_plain_lines_without_tqdm_and_one_warning():
    # A fresh interpreter in which tqdm cannot be imported.
    code = (
        "import sys, warnings\n"
        "sys.modules['tqdm'] = None\n"
        "import numpy as np, anykmeans\n"
        "X = np.random.default_rng(0).normal(size=(2000, 3))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    with anykmeans.config_context(progress=True):\n"
        "        anykmeans.KMeans(3, n_init=2, random_state=0).fit(X)\n"
        "        anykmeans.KMeans(3, n_init=2, random_state=0).fit(X)\n"
        "print([str(w.message) for w in caught])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    assert result.returncode == 0, result.stderr
    messages = eval(result.stdout)  # a list of str printed by the child
    assert len(messages) == 1 and "pip install tqdm" in messages[0]
    assert "KMeans run 1/2: done after" in result.stderr and "inertia" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_fit_closes_its_bar(capsys):
    pytest.importorskip("tqdm")

    def bad_init(X, k, random_state):
        raise RuntimeError("init failed")

    with anykmeans.config_context(progress=True), pytest.raises(RuntimeError, match="init failed"):
        anykmeans.KMeans(3, init=bad_init, n_init=1).fit(_data())
    from tqdm import tqdm

    assert not tqdm._instances  # no bar left open
