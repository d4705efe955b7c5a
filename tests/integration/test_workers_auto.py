"""--workers auto in a real cgroup: a v1 cpu cgroup with a CFS quota gives its CPUs rounded up,
none gives the CPUs of the affinity mask (not the host's count), and a HUP reads the quota
again. The cgroup is made for the test (root and a writable v1 cpu hierarchy, else skipped) and
removed after it, also when it fails."""
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, wait_for


def v1_hierarchy(controller):
    """A v1 controller's mount point and this process's directory in it, or None."""
    ours = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            ours = path
    if ours is None:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        fields, fs = fields.split(), fs.split()
        if fs[0] == "cgroup" and controller in fs[2].split(",") and fields[3] == "/":
            return Path(fields[4]), Path(fields[4] + ours)
    return None


def quota_above(directory, mount):
    """Whether `directory` or a parent (up to the mount) already has a CFS quota."""
    d = directory
    while True:
        quota = d / "cpu.cfs_quota_us"
        if quota.exists() and int(quota.read_text()) != -1:
            return True
        if d == mount:
            return False
        d = d.parent


@pytest.fixture
def cpu_cgroup():
    """Makes cgroups under this process's v1 cpu cgroup: make(quota, period) -> directory."""
    if os.geteuid() != 0:
        pytest.skip("creating a cpu cgroup needs root")
    found = v1_hierarchy("cpu")
    if not found:
        pytest.skip("no cgroup v1 cpu hierarchy is mounted here")
    mount, ours = found
    made = []

    def make(quota, period=100000):
        path = ours / f"rotor-test-{os.getpid()}-{len(made)}"
        try:
            path.mkdir()
        except OSError as e:
            pytest.skip(f"cannot create a cpu cgroup under {ours}: {e}")
        made.append(path)
        (path / "cpu.cfs_period_us").write_text(str(period))
        (path / "cpu.cfs_quota_us").write_text(str(quota))
        return path

    make.mount, make.ours = mount, ours
    yield make
    for path in made:
        remove_cgroup(path, ours)


def remove_cgroup(path, parent):
    """rmdir once its processes are gone (moved up to `parent` if any is left)."""
    end = time.monotonic() + 10
    while path.exists():
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (parent / "cgroup.procs").write_text(pid)
        try:
            path.rmdir()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def started_inside(cgroup, home, cpus=None):
    """Processes started in the block begin in `cgroup` (and on `cpus`): the test process moves
    there for the block, as a child inherits both, and moves back after."""
    saved = os.sched_getaffinity(0)
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        yield
    finally:
        os.sched_setaffinity(0, saved)
        (home / "cgroup.procs").write_text(str(os.getpid()))


def auto_line(r):
    lines = wait_for(lambda: r.events("workers-auto"), what=f"event=workers-auto\n{r.log()}")
    assert len(lines) == 1, r.log()
    return lines[0]


def test_a_cfs_quota_of_one_and_a_half_cpus_makes_two_workers(cpu_cgroup, rotor):
    cgroup = cpu_cgroup(150000, 100000)
    with started_inside(cgroup, cpu_cgroup.ours):
        r = rotor("--workers", "auto", "-k", "hello", wait=False)
    r.start(2)
    line = auto_line(r)
    assert line["workers"] == "2"
    assert line["source"] == "cgroup-v1-quota"
    assert line["quota"] == "150000" and line["period"] == "100000"
    assert line["cgroup"] == str(cgroup)
    assert str(r.pid) in (cgroup / "cgroup.procs").read_text().split()
    time.sleep(0.5)  # no third worker comes
    assert len(r.ready_pids()) == 2
    assert r.events("config-warning") == []


def test_without_a_quota_the_affinity_mask_counts_not_the_host(cpu_cgroup, rotor):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the affinity count cannot be told from the host's")
    cgroup = cpu_cgroup(-1)
    if quota_above(cgroup, cpu_cgroup.mount):
        pytest.skip("this test's own cgroup already has a CPU quota")
    with started_inside(cgroup, cpu_cgroup.ours, cpus={0}):
        r = rotor("-w", "auto", "-k", "hello", wait=False)
    r.start(1)
    line = auto_line(r)
    assert line["workers"] == "1", f"the host has {os.cpu_count()} CPUs"
    assert line["source"] == "affinity"
    assert line["affinity"] == "1"
    assert line["quota"] == "max"
    time.sleep(0.5)
    assert len(r.ready_pids()) == 1


def test_web_concurrency_auto_reads_the_quota_too(cpu_cgroup, rotor):
    cgroup = cpu_cgroup(300000, 200000)
    with started_inside(cgroup, cpu_cgroup.ours):
        r = rotor("-k", "hello", env={"WEB_CONCURRENCY": "auto"}, wait=False)
    r.start(2)
    assert auto_line(r)["workers"] == "2"


def test_a_hup_reads_the_quota_again(cpu_cgroup, rotor):
    cgroup = cpu_cgroup(150000, 100000)
    with started_inside(cgroup, cpu_cgroup.ours):
        r = rotor("-w", "auto", "-k", "hello", wait=False)
    r.start(2)
    (cgroup / "cpu.cfs_quota_us").write_text("250000")
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(r.events("workers-auto")) == 2, what=f"a second workers-auto\n{r.log()}")
    again = r.events("workers-auto")[1]
    assert again["workers"] == "3" and again["quota"] == "250000"
    wait_for(lambda: any(e.get("workers") == "3" for e in r.events("config-applied")),
             what=f"config-applied workers=3\n{r.log()}")
    r.wait_ready(3)


def test_a_number_is_not_resolved_or_logged(rotor):
    r = rotor("-w", "2", "-k", "hello")
    assert r.events("workers-auto") == []


def run(*args, env=None):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")
              and k != "WEB_CONCURRENCY"}, **(env or {})}
    return subprocess.run([str(BIN), *args, "-b", "127.0.0.1:0"], capture_output=True, text=True,
                          env=env, timeout=15)


@pytest.mark.parametrize("value", ["autox", "0", "-1", "Auto2"])
def test_a_bad_workers_value_is_one_line_and_exit_2(value):
    done = run("--workers", value)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"--workers: expected an integer in 1..512 or auto, got '{value}'" in done.stderr


def test_a_bad_web_concurrency_is_one_line_and_exit_2():
    done = run(env={"WEB_CONCURRENCY": "autox"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "WEB_CONCURRENCY: expected an integer in 1..512 or auto" in done.stderr


def test_print_config_shows_auto_as_given(tmp_path):
    done = run("--print-config", "--workers", "auto")
    assert done.returncode == 0, done.stderr
    assert '\nworkers = "auto"\n' in done.stdout
    printed = tmp_path / "printed.toml"
    printed.write_text(done.stdout)
    again = run("--print-config", "-c", str(printed))
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout
