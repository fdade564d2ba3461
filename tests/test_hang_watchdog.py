"""The test suite's hang watchdog (tests/conftest.py): a hung test ends the run with every stack printed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parent.parent

HUNG_TEST = textwrap.dedent(
    """
    import signal
    import time


    def test_passes():
        assert True


    def test_blocked_where_the_alarm_cannot_reach():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as a thread stuck in C is
        time.sleep(120)


    def test_never_reached():
        assert True
    """
)


#: A test that passes but leaves a thread the interpreter's exit waits for (as multiprocessing's exit
#: handler waits for child processes).
HUNG_EXIT = textwrap.dedent(
    """
    import threading
    import time


    def test_leaves_a_thread_behind():
        threading.Thread(target=time.sleep, args=(120,), name="left-behind").start()
    """
)


def run_pytest(test_file: Path) -> subprocess.CompletedProcess[str]:
    """pytest on ``test_file`` with this suite's conftest, a 1 s alarm and a 4 s watchdog."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            "--timeout",
            "1",
            "-v",
            str(test_file),
        ],
        cwd=ROOT,
        env=subprocess_env(CREDITS_TEST_HANG_SECONDS="4"),
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_a_test_the_alarm_cannot_stop_ends_the_run_with_its_stack(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG_TEST)
    run = run_pytest(tmp_path / "test_hung.py")
    assert run.returncode != 0
    assert "test_passes PASSED" in run.stdout
    assert "Timeout (0:00:04)!" in run.stderr
    assert "in test_blocked_where_the_alarm_cannot_reach" in run.stderr
    assert "test_never_reached" not in run.stdout


def test_a_process_that_cannot_exit_after_its_tests_ends_with_its_stack(tmp_path: Path) -> None:
    (tmp_path / "test_hung_exit.py").write_text(HUNG_EXIT)
    run = run_pytest(tmp_path / "test_hung_exit.py")
    assert "1 passed" in run.stdout
    assert run.returncode != 0
    assert "Timeout (0:00:04)!" in run.stderr
    assert "in _shutdown" in run.stderr  # the interpreter's exit, waiting for the thread
