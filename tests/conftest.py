"""Test configuration: the implementation under test, the devices, the report.

Options (each also an environment variable, for CI):

* ``--impl MODULE`` / ``IMPL_MODULE``: the module (or ``module:ATTRIBUTE``,
  an object inside a module) whose functional API is judged (default
  ``impl.functional``; see ``tools.target``).  A function it lacks skips its
  cases with "not provided by MODULE"; a function that raises
  ``NotImplementedError(reason)`` for a case skips that case with the reason;
  ``CONFORMANCE_CAPABILITIES = {"jax_transforms": False}`` skips the tests
  marked ``jax_transforms`` (jit, vmap, grad, sharding).
* ``--devices IDS`` / ``CONFORMANCE_DEVICES``: ``all`` (default), a platform
  (``cpu``, ``gpu``) or device ids (``cpu0,gpu0``).
* ``--report-dir DIR``: also write the tolerance report as JSON and Markdown.

Two CPU devices are forced (``XLA_FLAGS=--xla_force_host_platform_device_count=2``)
unless XLA_FLAGS already sets a count, so multi-device paths run everywhere.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import json
import os
import re
import platform
import types

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=2").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tools import devices as _devices  # noqa: E402
from tools import golden as _golden  # noqa: E402
from tools import reporting  # noqa: E402
from tools import target as _target  # noqa: E402

DEFAULT_IMPL = "impl.functional"
RUN_ID_ENV = "CONFORMANCE_RUN_ID"


def pytest_addoption(parser):
    g = parser.getgroup("conformance")
    g.addoption("--impl", default=os.environ.get("IMPL_MODULE", DEFAULT_IMPL),
                help="module (or module:ATTRIBUTE) whose functional API is tested "
                     "(env IMPL_MODULE; default impl.functional)")
    g.addoption("--devices", default=os.environ.get(_devices.DEVICES_ENV, "all"),
                help="devices to test: all, a platform, or ids like cpu0,cpu1 (env CONFORMANCE_DEVICES)")
    g.addoption("--report-dir", default=None, help="write report.json and report.md to this folder")
    g.addoption("--impl-tests-only", action="store_true",
                help="run only the tests that judge the implementation under test (those using impl_op, "
                     "impl_ops or impl_module); the project's own checks (references, golden store, tools, "
                     "layer classes) are deselected")
    g.addoption("--no-jax-cache", action="store_true",
                help="do not use JAX's persistent compilation cache in .jax_cache/ (every program is "
                     "compiled afresh)")
    g.addoption("--quick", action="store_true",
                help="edit-test profile (under a minute on 2 cores once JAX's compilation cache in "
                     ".jax_cache/ is warm): the first device only, float32 cases only, tests marked slow "
                     "left out; the full matrix is the default run")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "jax_transforms: needs the implementation to be a JAX function (jit, vmap, grad, "
                   "sharding); skipped when it declares CONFORMANCE_CAPABILITIES = {'jax_transforms': False}")
    config.addinivalue_line(
        "markers", "known_failure(reason, skip=False, raises=None): a registry known failure of "
                   "impl.functional; becomes xfail(strict=True, raises=raises) (or a skip with skip=True) when the implementation under test is "
                   "impl.functional or declares CONFORMANCE_VARIANT_OF = 'impl.functional'; other "
                   "implementations must meet the budget")
    config._conformance_rows = []
    config._run_started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config._x64_at_start = bool(jax.config.jax_enable_x64)
    config._impl_name = config.getoption("--impl")
    try:
        config._impl = _target.load(config._impl_name)
        config._impl_capabilities = _target.capabilities(config._impl, config._impl_name)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    try:
        config._devices = _devices.select_devices(config.getoption("--devices"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    if config.getoption("--quick"):
        config._devices = config._devices[:1]
    if not config.getoption("--no-jax-cache"):
        # JAX's persistent compilation cache (git-ignored .jax_cache/): most of a run is
        # compilation, and an edit changes few of the compiled programs (quick profile: 91 s
        # cold, 47-55 s warm on 2 cores; full run: docs/performance.md).  Programs compiled by
        # one xdist worker are found by the other.  JAX_COMPILATION_CACHE_DIR, when set, wins.
        if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            jax.config.update("jax_compilation_cache_dir",
                              os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = metafunc.config._devices
        metafunc.parametrize("device", devs, ids=[_devices.device_id(d) for d in devs])


def _known_failures_apply(config):
    """The registry's known failures are measured figures of impl.functional: they apply to it
    and to its declared variants, never to another implementation."""
    impl = config._impl
    return impl is importlib.import_module(DEFAULT_IMPL) or _target.variant_of(impl) == DEFAULT_IMPL


_IMPL_FIXTURES = {"impl_op", "impl_ops", "impl_module"}


# a dtype in a test id other than float32 (bfloat16 is not float16: no letter before "float")
_OTHER_DTYPES = re.compile(r"(?<![a-z])(bfloat16|float16|float64)(?![0-9])")


def _quick_keeps(item) -> bool:
    return item.get_closest_marker("slow") is None and not _OTHER_DTYPES.search(item.name)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--quick"):
        keep = [i for i in items if _quick_keeps(i)]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    if config.getoption("--impl-tests-only"):
        keep = [i for i in items if _IMPL_FIXTURES & set(getattr(i, "fixturenames", ()))]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    apply = _known_failures_apply(config)
    for item in items:
        m = item.get_closest_marker("known_failure")
        if m is None or not apply:
            continue
        reason = m.args[0] if m.args else m.kwargs.get("reason", "")
        if m.kwargs.get("skip"):
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            extra = {"raises": m.kwargs["raises"]} if "raises" in m.kwargs else {}
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason, **extra))


def pytest_runtest_setup(item):
    if item.get_closest_marker("jax_transforms") and not item.config._impl_capabilities["jax_transforms"]:
        pytest.skip(f"needs jit/vmap/grad/sharding; {item.config._impl_name} declares "
                    "CONFORMANCE_CAPABILITIES['jax_transforms'] = False")


@pytest.fixture(scope="session")
def impl_module(request):
    """The implementation under test (a module, or the object named by ``module:ATTRIBUTE``)."""
    return request.config._impl


@pytest.fixture(scope="session")
def impl_capabilities(request):
    return dict(request.config._impl_capabilities)


def _skipping_not_implemented(fn, name, impl_name):
    """``fn`` whose ``NotImplementedError(reason)`` becomes a skip naming the reason."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as e:
            pytest.skip(f"{name} by {impl_name}: not implemented for this case: {e}")
    return call


@pytest.fixture
def impl_op(impl_module, request):
    """``impl_op(name)``: the function, or a skip with "not provided by MODULE"; calling it
    skips the test, with the reason, when it raises ``NotImplementedError``."""
    impl_name = request.config._impl_name

    def get(name):
        fn = _target.provided(impl_module, name, impl_name)
        if fn is None:
            pytest.skip(f"{name} not provided by {impl_name}")
        return _skipping_not_implemented(fn, name, impl_name)
    return get


@pytest.fixture
def impl_ops(impl_op):
    """``impl_ops(*names)``: a namespace holding ``impl_op(name)`` for each name (so a test
    that uses several ops skips, with the reason, when one is missing or not implemented)."""
    def get(*names):
        return types.SimpleNamespace(**{n: impl_op(n) for n in names})
    return get


@pytest.fixture
def reproduce(request):
    """The command that reruns this one test against this implementation (node ids, unlike
    ``-k``, accept case ids such as ``leaky_relu[negative_slope=0.1]``)."""
    impl = request.config._impl_name
    return f"pytest '{request.node.nodeid}'" + ("" if impl == DEFAULT_IMPL else f" --impl {impl}")


@pytest.fixture(scope="session")
def store():
    return _golden.Store()


@pytest.fixture
def record(request):
    """``record(row_dict)``: add a row to the tolerance report."""
    return request.config._conformance_rows.append


def _case_of(params):
    case = params.get("case", params.get("case_id"))
    return getattr(case, "id", case) if case is not None else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Skipped cases become report rows of kind "skip" (case, dtype, device, reason), so a
    comparison can tell "not provided" and "not expressible" apart from "not run"."""
    rep = yield
    if rep.skipped and not hasattr(rep, "wasxfail") and hasattr(item, "callspec"):
        case = _case_of(item.callspec.params)
        if isinstance(case, str):
            dev = item.callspec.params.get("device")
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            item.config._conformance_rows.append({
                "kind": "skip", "case": case, "dtype": item.callspec.params.get("dtype", ""),
                "device": _devices.device_id(dev) if dev is not None else "", "source": item.originalname,
                "reason": reason.removeprefix("Skipped: ")})
    return rep


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
        # which run wrote this report: tools.report passes its own id and checks it on the way back,
        # so a report left by an earlier run is never published as this run's
        "run id": os.environ.get(RUN_ID_ENV) or config._run_started,
        "generated": config._run_started,
    }
    if _target.peer(config._impl):
        h["peer"] = _target.peer(config._impl)
    h.update({
        "capabilities": ", ".join(f"{k}={v}" for k, v in config._impl_capabilities.items()),
        "devices": ", ".join(_devices.device_id(d) + f" ({d.device_kind})" for d in config._devices),
        "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}, "
                    f"scipy {scipy.__version__}, mpmath {mpmath.__version__} (backend {mpmath.libmp.BACKEND})",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    })
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
