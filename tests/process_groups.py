"""Every process group a test session starts ends with the session: also on Ctrl-C, SIGTERM or SIGHUP.

The Airflow stacks, the KMS/S3 emulators and redis-server run in process groups of their own
(`start_new_session=True`), so a terminal's Ctrl-C does not reach them and a killed test process
leaves them orphaned. Their fixtures stop them in `finally`; this plugin makes that teardown happen
on SIGTERM and SIGHUP as it does on Ctrl-C, and kills whatever group is still there at exit.

Under pytest-xdist each worker is its own test process: the controller passes SIGTERM/SIGHUP on to
its workers (which share its process group), each worker records the groups it starts in a
directory the controller created, and the controller kills what is left of them at exit, also when
a worker was killed before it could.
"""
from __future__ import annotations

import atexit
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

REGISTRY_ENV = "SECUREPIPE_TEST_PROCESS_GROUPS"


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children() -> list[tuple[int, int]]:
    """(pid, process group) of every live child of this process."""
    me, found = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(entry.name)
        if fields and int(fields[1]) == me:
            found.append((int(entry.name), int(fields[2])))
    return found


def _started_at(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of stat: start time in clock ticks since boot


def started_groups() -> set[int]:
    """The process groups this process started: children that lead a group of their own."""
    return {pid for pid, group in _children() if pid == group}


def _registry() -> Path:
    return Path(os.environ[REGISTRY_ENV])


def record_started_groups() -> None:
    """Note this process's groups with their leader's start time: a pid (so a group id) is reused
    once its process is gone, and the controller must not kill a stranger's group."""
    groups = {f"{group} {_started_at(group)}" for group in started_groups()}
    if groups:
        path = _registry() / str(os.getpid())
        known = set(path.read_text().splitlines()) if path.exists() else set()
        path.write_text("\n".join(sorted(known | groups)))


def _recorded_groups(path: Path) -> set[int]:
    """The groups recorded in `path` that are still ours: the leader is gone (then no other group can
    have its id) or is the very process recorded."""
    ours = set()
    for line in path.read_text().splitlines():
        group, started = line.split()
        leader_started = _started_at(int(group))
        if leader_started is None or leader_started == started:
            ours.add(int(group))
    return ours


def end_groups(groups: set[int], grace: float = 5.0) -> None:
    """SIGTERM each group, then SIGKILL what is left of it after `grace` seconds."""
    alive = set()
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
            alive.add(group)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {g for g in alive if _group_exists(g)}
    for group in alive:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A group whose members are all zombies of ours still answers: reap them first.
    for pid, pid_group in _children():
        if pid_group == group:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _end_everything_recorded() -> None:
    """At exit: this process's own groups, and (in the process that made the registry) every worker's."""
    groups = started_groups()
    registry = _registry()
    if int(os.environ.get(REGISTRY_ENV + "_OWNER", "0")) == os.getpid():
        for path in registry.glob("*"):
            groups |= _recorded_groups(path)
            path.unlink()
        registry.rmdir()
    end_groups(groups)


_interrupted = False


def _interrupt(signum, frame) -> None:
    """SIGTERM/SIGHUP: pass it on to the children in our own group (xdist workers, CLI calls), then
    stop as on Ctrl-C, so every fixture's teardown runs. Once: `make` passes its own SIGTERM on to
    pytest, and a second interrupt would cut the teardown (and the report) short."""
    global _interrupted
    if _interrupted:
        return
    _interrupted = True
    own = os.getpgrp()
    for pid, group in _children():
        if group == own:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config) -> None:
    if REGISTRY_ENV not in os.environ:  # the first test process; xdist workers inherit the variable
        os.environ[REGISTRY_ENV] = tempfile.mkdtemp(prefix="securepipe-test-groups-")
        os.environ[REGISTRY_ENV + "_OWNER"] = str(os.getpid())
    atexit.register(_end_everything_recorded)
    _handle_signals()


def _handle_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    finally:
        record_started_groups()  # session and module fixtures start their stacks here
        _handle_signals()  # dag.test() runs tasks in-process, and Airflow's task runner takes SIGTERM over


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        record_started_groups()  # a test may restart a component (the fault tests do)
        _handle_signals()
