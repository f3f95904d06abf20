"""A process group a test starts ends with its test session, however the session is stopped.

A child pytest session starts `sleep` in a group of its own (as the stack fixtures start Airflow,
moto and redis-server) from a fixture with no teardown of its own, then is stopped mid-test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CHILD_SESSION = '''
import os, subprocess, time
from pathlib import Path
import pytest

@pytest.fixture(scope="session")
def stack():
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    Path(os.environ["GROUP_FILE"]).write_text(str(process.pid))
    return process  # no teardown here: only the plugin can end it

def test_runs_until_stopped(stack):
    time.sleep(600)
'''


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum,xdist", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm", "sigterm-xdist"])
def test_a_stopped_session_leaves_no_process_group_behind(tmp_path, signum, xdist):
    (tmp_path / "test_child.py").write_text(CHILD_SESSION)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    group_file = tmp_path / "group"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREPIPE_TEST_PROCESS_GROUPS")}
    env.update(GROUP_FILE=str(group_file), PYTHONPATH=str(TESTS))
    argv = [sys.executable, "-m", "pytest", "-p", "process_groups", "-p", "no:cacheprovider", "-q", "test_child.py"]
    session = subprocess.Popen(argv + (["-n", "1"] if xdist else []), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    group = None
    try:
        deadline = time.monotonic() + 120
        while not group_file.exists() or not group_file.read_text():
            assert session.poll() is None, session.stdout.read().decode()
            assert time.monotonic() < deadline, "the child session never started its process"
            time.sleep(0.1)
        group = int(group_file.read_text())
        assert _running(group)
        session.send_signal(signum)
        output = session.communicate(timeout=60)[0].decode()
        deadline = time.monotonic() + 10
        while _running(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(group), f"the session's process group outlived it:\n{output}"
    finally:
        if session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
        if group is not None and _running(group):
            os.killpg(group, signal.SIGKILL)
