"""tools.exhaustive on a real Dask cluster: a scheduler and two workers started as separate
processes on 127.0.0.1 (``python -m distributed.cli.dask_scheduler`` / ``dask_worker``, as
``dask scheduler`` / ``dask worker`` are), no mocks.

The sweep covers three chunks of relu (126: large positive inputs, 127: the largest, +inf
and nan patterns, 128: -0 and negative subnormals), 2**24 inputs each:

* the records equal those of the embedded cluster (the default) byte for byte, every
  field but the worker time;
* a worker killed (SIGKILL) while it holds a chunk: the sweep still completes, that chunk
  computed by the other worker, with the same records;
* the client killed (SIGKILL) after its first record: the same command again computes only
  the chunks not recorded, and leaves the recorded files as they were.

The workers run without a nanny (``--no-nanny``), so that a killed worker stays dead and the
other one has to take over its chunk.  One module-scoped cluster serves the three tests,
which compute about 14 chunks and start 8 processes that import JAX: 105 CPU seconds in all
(5.4 minutes of wall time at a load average of 20 on two cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip(
    "distributed", reason="the Dask engine's tests need the extra: pip install -e '.[distributed]'")

from tools import exhaustive  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask_cluster")]

REPO = Path(__file__).resolve().parent.parent
CASE, CHUNKS = "relu", (126, 129)
TIMEOUT = 180  # seconds for any one wait: a hung cluster fails the test instead of the CI run


def _env():
    """The scheduler and workers import this repository as the README says: with it on PYTHONPATH;
    and they are as patient with a starved process as tools.exhaustive's client is (CI runs
    the whole suite beside them on two cores)."""
    patience = {f"DASK_{k.upper().replace('.', '__').replace('-', '_')}": v for k, v in exhaustive._PATIENCE.items()}
    return dict(os.environ, **patience,
                PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))


def _wait(cond, what, timeout=TIMEOUT, interval=0.05, client=None):
    """Poll ``cond`` until it holds; fail after ``timeout`` s, or when ``client`` (the sweep's
    process) has ended first, with the end of its log."""
    t0 = time.monotonic()
    while not cond():
        if client is not None and client.poll() is not None:
            log = client.log.read_text().splitlines()
            raise AssertionError(f"the sweep ended (exit {client.returncode}) before {what}; the end of its log:\n"
                                 + "\n".join(log[-15:]))
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class _Cluster:
    """A scheduler and workers as processes of this test; ``client`` watches the scheduler."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.workers = tmp, [], {}
        sched_file = tmp / "scheduler.json"
        self._start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--dashboard-address", ":0", "--scheduler-file", str(sched_file)], "scheduler")
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size > 0, "the scheduler file")
        _wait(lambda: "address" in json.loads(sched_file.read_text() or "{}"), "the scheduler's address")
        self.address = json.loads(sched_file.read_text())["address"]
        self.client = distributed.Client(self.address, timeout="60s")

    def _start(self, cmd, name):
        with open(self.tmp / f"{name}.log", "w") as log:  # the process keeps its own descriptor
            p = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def add_worker(self):
        n = len(self.workers)
        p = self._start([sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                         "--no-nanny", "--no-dashboard", "--name", f"w{n}", "--local-directory",
                         str(self.tmp / f"w{n}")], f"worker{n}")
        self.workers[p.pid] = p
        return p

    def live_workers(self) -> set:
        """The addresses of the workers the scheduler knows."""
        return set(self.client.scheduler_info()["workers"])

    def pid(self, worker) -> int:
        return self.client.run(os.getpid, workers=[worker])[worker]

    def wait_for_workers(self, n):
        _wait(lambda: len(self.live_workers()) == n, f"{n} workers")

    def close(self):
        """Kill the processes this test started (nothing of theirs is kept; a polite close took
        45 s on a loaded machine)."""
        self.client.close()
        for p in reversed(self.procs):  # workers first, then the scheduler
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = _Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.add_worker()
        c.add_worker()
        c.wait_for_workers(2)
        yield c
    finally:
        c.close()


def _args(out, *more):
    return [CASE, "--chunks", f"{CHUNKS[0]}:{CHUNKS[1]}", "--out", str(out), *more]


def _chunk_dir(out):
    return Path(out) / f"{CASE}-float32" / "impl.functional" / "chunks"


def _results(out) -> dict:
    """{chunk: the bytes of its record without the worker times} of a sweep folder."""
    out_ = {}
    for p in sorted(_chunk_dir(out).glob("*.json")):
        rec = json.loads(p.read_text())
        for key in exhaustive.TIMING_KEYS:
            del rec[key]
        out_[int(p.stem)] = json.dumps(rec).encode()
    return out_


def _client_process(out, address):
    """The sweep's client as a process of its own (so that it can be killed); its log is
    ``out/client.log``."""
    log = Path(out) / "client.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "tools.exhaustive", *_args(out, "--scheduler", address)],
                             cwd=REPO, env=_env(), stdout=f, stderr=subprocess.STDOUT)
    p.log = log
    return p


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The records of the same chunks swept by the default, embedded cluster."""
    out = tmp_path_factory.mktemp("embedded")
    assert exhaustive.main(_args(out, "--jobs", "2")) == 0
    res = _results(out)
    assert sorted(res) == list(range(*CHUNKS))
    return res


def test_cluster_sweep_equals_the_embedded_one(cluster, embedded, tmp_path, capsys):
    assert exhaustive.main(_args(tmp_path, "--scheduler", cluster.address)) == 0
    assert f"0 chunks already done, 3 to go, 2 workers of {cluster.address}" in capsys.readouterr().err
    assert _results(tmp_path) == embedded


def test_a_killed_worker_does_not_stop_the_sweep(cluster, embedded, tmp_path):
    cluster.wait_for_workers(2)
    client = _client_process(tmp_path, cluster.address)
    try:
        busy = {}

        def a_worker_holds_a_chunk():
            busy.update({a: keys for a, keys in cluster.client.processing().items() if keys})
            return bool(busy)

        _wait(a_worker_holds_a_chunk, "a worker was given a chunk", client=client)
        time.sleep(1.0)  # inside the chunk: its JAX start and first pieces take longer than this
        victim, keys = next(iter(busy.items()))
        held = sorted(int(k.split("-")[2]) for k in keys)
        recorded_before = set(_results(tmp_path)) if _chunk_dir(tmp_path).exists() else set()
        pid = cluster.pid(victim)
        assert pid in cluster.workers  # one of the worker processes this test started
        os.kill(pid, signal.SIGKILL)
        assert client.wait(timeout=TIMEOUT) == 0, client.log.read_text()[-3000:]
    finally:
        if client.poll() is None:
            client.kill()
    assert not set(held) & recorded_before, "the killed worker's chunk was recorded before the kill"
    assert _results(tmp_path) == embedded  # its chunk was computed by the other worker
    assert victim not in cluster.live_workers()
    cluster.add_worker()  # for the next test
    cluster.wait_for_workers(2)


def test_a_killed_client_resumes_without_recomputing(cluster, embedded, tmp_path):
    chunks = _chunk_dir(tmp_path)
    client = _client_process(tmp_path, cluster.address)
    try:
        _wait(lambda: chunks.exists() and any(chunks.glob("*.json")), "the first chunk record", client=client)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
    first = {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in chunks.glob("*.json")}
    n = len(first)
    assert 0 < n < 3, f"the client was to be killed mid-sweep; it had recorded {n} of 3 chunks"
    rerun = subprocess.run([sys.executable, "-m", "tools.exhaustive", *_args(tmp_path, "--scheduler",
                                                                                cluster.address)],
                           cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n} chunks already done, {3 - n} to go" in rerun.stderr
    again = {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in chunks.glob("*.json")}
    assert {k: again[k] for k in first} == first  # the records of the first run were not rewritten
    assert _results(tmp_path) == embedded
