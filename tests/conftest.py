"""Test configuration: the implementation under test, the devices, the report.

Options (each also an environment variable, for CI):

* ``--impl MODULE`` / ``IMPL_MODULE``: the module whose functional API is
  judged (default ``impl.functional``).  A function it lacks skips its cases
  with "not provided by MODULE".
* ``--devices IDS`` / ``CONFORMANCE_DEVICES``: ``all`` (default), a platform
  (``cpu``, ``gpu``) or device ids (``cpu0,gpu0``).
* ``--report-dir DIR``: also write the tolerance report as JSON and Markdown.

Two CPU devices are forced (``XLA_FLAGS=--xla_force_host_platform_device_count=2``)
unless XLA_FLAGS already sets a count, so multi-device paths run everywhere.
"""

from __future__ import annotations

import importlib
import json
import os
import platform

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=2").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tools import devices as _devices  # noqa: E402
from tools import golden as _golden  # noqa: E402
from tools import reporting  # noqa: E402

DEFAULT_IMPL = "impl.functional"


def pytest_addoption(parser):
    g = parser.getgroup("conformance")
    g.addoption("--impl", default=os.environ.get("IMPL_MODULE", DEFAULT_IMPL),
                help="module whose functional API is tested (env IMPL_MODULE; default impl.functional)")
    g.addoption("--devices", default=os.environ.get(_devices.DEVICES_ENV, "all"),
                help="devices to test: all, a platform, or ids like cpu0,cpu1 (env CONFORMANCE_DEVICES)")
    g.addoption("--report-dir", default=None, help="write report.json and report.md to this folder")


def pytest_configure(config):
    config._conformance_rows = []
    config._impl_name = config.getoption("--impl")
    try:
        config._devices = _devices.select_devices(config.getoption("--devices"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = metafunc.config._devices
        metafunc.parametrize("device", devs, ids=[_devices.device_id(d) for d in devs])


@pytest.fixture(scope="session")
def impl_module(request):
    name = request.config._impl_name
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise pytest.UsageError(f"--impl {name}: cannot import it ({e}); pass an importable module name") from None


@pytest.fixture
def impl_op(impl_module, request):
    """``impl_op(name)``: the function, or a skip with "not provided by MODULE"."""
    def get(name):
        fn = getattr(impl_module, name, None)
        if fn is None:
            pytest.skip(f"{name} not provided by {request.config._impl_name}")
        return fn
    return get


@pytest.fixture(scope="session")
def store():
    return _golden.Store()


@pytest.fixture
def record(request):
    """``record(row_dict)``: add a row to the tolerance report."""
    return request.config._conformance_rows.append


# ---- report collection (works under pytest-xdist: workers send rows to the controller)

def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workeroutput"):
        config.workeroutput["conformance_rows"] = json.dumps(config._conformance_rows, default=float)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    rows = node.workeroutput.get("conformance_rows") if hasattr(node, "workeroutput") else None
    if rows:
        node.config._conformance_rows.extend(json.loads(rows))


def _header(config):
    import jaxlib
    import mpmath
    import scipy

    h = {
        "implementation": config._impl_name,
        "devices": ", ".join(_devices.device_id(d) + f" ({d.device_kind})" for d in config._devices),
        "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}, "
                    f"scipy {scipy.__version__}, mpmath {mpmath.__version__} (backend {mpmath.libmp.BACKEND})",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    for d in config._devices:
        sb = _devices.subnormal_behaviour(d)
        h[f"subnormals on {_devices.device_id(d)}"] = "; ".join(
            f"{k}: {'flushes results to zero' if v['flushes_results'] else 'keeps subnormal results'}, "
            f"{'treats subnormal inputs as zero' if v['inputs_as_zero'] else 'keeps subnormal inputs'}"
            for k, v in sb.items())
    h["metric"] = ("max/p99 ulp over normal-range results; subnormal results counted apart "
                   "(flushed/total); % CR = bitwise equal to the correctly rounded value")
    return h


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    rows = config._conformance_rows
    if not rows:
        return
    header = _header(config)
    terminalreporter.section("tolerance report")
    terminalreporter.write_line(reporting.render_text(rows, [f"{k}: {v}" for k, v in header.items()]))
    out = config.getoption("--report-dir")
    if out:
        j, m = reporting.write_report(out, rows, header)
        terminalreporter.write_line(f"report written to {j} and {m}")
