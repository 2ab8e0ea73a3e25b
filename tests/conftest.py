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
* ``--profile strict|faithful|torch``: the budget profile (``tools/profiles.py``).
* ``--record-baseline FILE`` / ``--baseline FILE``: record this run's figures; fail only on what
  got worse than a recorded run (``tools/baseline.py``).

Tests marked ``convention`` check a convention of the contract (kinks, signs of zeros, limits,
edge rows); ``-m "not convention"`` deselects them.  Warnings raised by an implementation other
than impl.functional are recorded in the report (rows of kind "warning"), not turned into errors.

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
import warnings

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=2").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tools import baseline as _baseline  # noqa: E402
from tools import devices as _devices  # noqa: E402
from tools import golden as _golden  # noqa: E402
from tools import profiles as _profiles  # noqa: E402
from tools import reporting  # noqa: E402
from tools import target as _target  # noqa: E402
from tools.verdict import Verdict  # noqa: E402

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
    g.addoption("--profile", default=os.environ.get("CONFORMANCE_PROFILE", _profiles.DEFAULT),
                help="budget profile: " + "; ".join(_profiles.describe(n) for n in _profiles.PROFILES)
                     + " (env CONFORMANCE_PROFILE; tools/profiles.py has their derivations)")
    g.addoption("--record-baseline", default=None, metavar="FILE",
                help="write every test's outcome and figures to FILE (JSON), for --baseline later")
    g.addoption("--baseline", default=None, metavar="FILE",
                help="fail only where a figure got worse than in FILE (noise rule in tools/baseline.py) or a "
                     "pass became a fail; failures FILE has are expected failures; improvements are listed")
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
    config.addinivalue_line(
        "markers", "convention: checks a convention of the contract (derivative at a kink, sign of a zero, "
                   "limit at ±inf, NaN propagation, all -inf or constant rows), not accuracy; "
                   "-m 'not convention' deselects them")
    config._conformance_rows = []
    config._outcomes = {}
    try:
        _profiles.set_active(config.getoption("--profile"))
        config._baseline = _baseline.load(config.getoption("--baseline")) if config.getoption("--baseline") else None
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
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
        # one xdist worker are found by that worker in the next run (one folder each, see
        # _cache_dir).  JAX_COMPILATION_CACHE_DIR, when set, wins.
        if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            jax.config.update("jax_compilation_cache_dir", _cache_dir())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _is_cache_warning(w) -> bool:
    """JAX's warning for a compilation-cache entry it could not read or write: a cache miss (JAX
    compiles the program), not a result of the code under test."""
    return str(w.message).startswith(("Error reading persistent compilation cache entry",
                                      "Error writing persistent compilation cache entry"))


def _cache_dir() -> str:
    """JAX's compilation cache: ``.jax_cache/`` in a clone (git-ignored), the user's cache folder
    (``$XDG_CACHE_HOME/vetted-layers/jax``) for the installed suite; never the working directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isdir(os.path.join(root, ".git")):
        base = os.path.join(root, ".jax_cache")
    else:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "vetted-layers", "jax")
    # One folder per xdist worker (gw0, gw1, ...; "main" without xdist): JAX writes an entry
    # without a lock (unless given a size limit, whose eviction rereads the whole folder on every
    # write), and a worker that read another's half-written entry failed a test on the warning.
    return os.path.join(base, os.environ.get("PYTEST_XDIST_WORKER", "main"))


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = metafunc.config._devices
        metafunc.parametrize("device", devs, ids=[_devices.device_id(d) for d in devs])


def _known_failures_apply(config):
    """The registry's known failures are measured figures of impl.functional: they apply to it
    and to its declared variants, never to another implementation."""
    return _is_own(config) and _profiles.active() == "strict"


def _is_own(config):
    """impl.functional or a declared variant of it: the project's own code."""
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


def _skipping_not_implemented(fn, name, impl_name, on_warning=None):
    """``fn`` whose ``NotImplementedError(reason)`` becomes a skip naming the reason; with
    ``on_warning``, the warnings ``fn`` raises are handed to it instead of being raised."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            if on_warning is None:
                return fn(*args, **kwargs)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = fn(*args, **kwargs)
            for w in caught:
                if not _is_cache_warning(w):
                    on_warning(w)
            return out
        except NotImplementedError as e:
            pytest.skip(f"{name} by {impl_name}: not implemented for this case: {e}")
    return call


@pytest.fixture
def impl_op(impl_module, request):
    """``impl_op(name)``: the function, or a skip with "not provided by MODULE"; calling it
    skips the test, with the reason, when it raises ``NotImplementedError``."""
    impl_name = request.config._impl_name
    own = _is_own(request.config)

    def get(name):
        request.node.__dict__.setdefault("_ops_used", []).append(name)
        fn = _target.provided(impl_module, name, impl_name)
        if fn is None:
            pytest.skip(f"{name} not provided by {impl_name}")

        def on_warning(w):  # the implementation under test is observed, not changed
            _add_row(request, Verdict(kind="warning", case=name, source=request.node.originalname,
                                      detail=f"{w.category.__name__}: {w.message}"))
        return _skipping_not_implemented(fn, name, impl_name, None if own else on_warning)
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
    return _reproduce(request.config, request.node)


@pytest.fixture(scope="session")
def store():
    return _golden.Store()


def _add_row(request, row):
    """Add a row (a ``Verdict`` or a dict of its fields) of the running test to the report."""
    d = row.to_dict() if isinstance(row, Verdict) else dict(row)
    node = request.node
    d["test"] = d.get("test") or node.nodeid
    d["reproduce"] = d.get("reproduce") or _reproduce(request.config, node)
    d["convention"] = node.get_closest_marker("convention") is not None
    node.__dict__.setdefault("_conformance_rows", []).append(d)
    request.config._conformance_rows.append(d)


def _reproduce(config, node):
    impl = config._impl_name
    return f"pytest '{node.nodeid}'" + ("" if impl == DEFAULT_IMPL else f" --impl {impl}")


@pytest.fixture
def record(request):
    """``record(row)``: add a row (a ``tools.verdict.Verdict``) to the tolerance report."""
    return functools.partial(_add_row, request)


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
    if rep.when == "call" or (rep.when == "setup" and rep.failed):
        _settle(item, rep)
    return rep


# a failure message about the dtype of a result ("returned float32 for a float64 input")
_DTYPE_MSG = re.compile(r"returned \w+ for an? \w+ input|dtype", re.IGNORECASE)


def _settle(item, rep):
    """The test's outcome onto its rows.  Under ``--baseline`` a failure the baseline has becomes an
    expected failure and a figure worse than the baseline's a failure; a failure that none of the
    test's rows explains becomes a row of kind "check" carrying its message's first line."""
    config = item.config
    rows = item.__dict__.get("_conformance_rows", [])
    if config._baseline is not None and not hasattr(rep, "wasxfail") and not rep.skipped:
        verdict, why = _baseline.judge_test(config._baseline, item.nodeid, rep.failed, rows)
        if verdict == "as before":
            rep.outcome, rep.wasxfail = "skipped", f"as in the baseline: {why}"
        elif verdict == "regression":
            rep.outcome = "failed"
            rep.longrepr = f"worse than the baseline: {why}" + ("" if rep.longrepr is None else f"\n{rep.longrepr}")
    wasx = getattr(rep, "wasxfail", None)
    outcome = ("baseline" if wasx.startswith("as in the baseline") else "xfailed") if wasx is not None and rep.skipped \
        else rep.outcome
    config._outcomes[item.nodeid] = outcome
    for r in rows:
        r["outcome"] = outcome
        if r.get("passed") is None and r["kind"] != "warning":
            r["passed"] = rep.passed
    expected = outcome == "baseline" or (outcome == "xfailed" and item.get_closest_marker("known_failure") is not None)
    judges_impl = bool(_IMPL_FIXTURES & set(getattr(item, "fixturenames", ())))  # not a check of the project's own
    if judges_impl and (rep.failed or expected):
        if not any(r.get("passed") is False for r in rows):
            _add_check_row(item, rep, outcome)


def _failure_line(rep) -> str:
    crash = getattr(rep.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(rep.longrepr or "")
    if getattr(rep, "wasxfail", None) and not text:
        text = rep.wasxfail
    line = next((t.strip() for t in text.splitlines() if t.strip()), "failed")
    if line.startswith("[XPASS(strict)]"):
        return "meets its budget, but is registered as a known failure (" + line.removeprefix("[XPASS(strict)]").strip() \
            + "): remove the known failure from the registry"
    line = re.sub(r"^(AssertionError|Failed|GoldenMismatch): ", "", line)
    return re.sub(r";? ?\(?reproduce: .*$", "", line).rstrip(" ;:")  # the row carries the command


def _add_check_row(item, rep, outcome):
    params = getattr(item, "callspec", None) and item.callspec.params or {}
    case = _case_of(params) or params.get("op") or next(iter(item.__dict__.get("_ops_used", ())), "")
    dtype = params.get("dtype", "")
    dev = params.get("device")
    line = _failure_line(rep)
    convention = item.get_closest_marker("convention") is not None
    cause = "convention" if convention else "dtype" if _DTYPE_MSG.search(line) else "check"
    row = {"kind": "check", "case": case if isinstance(case, str) else str(case),
           "dtype": dtype if isinstance(dtype, str) else "", "device": _devices.device_id(dev) if dev is not None else "",
           "source": item.originalname, "passed": False, "cause": cause, "outcome": outcome, "test": item.nodeid,
           "reproduce": _reproduce(item.config, item), "convention": convention,
           "detail": f"differs from the contract's convention: {line}" if convention and "convention" not in line
           else line}
    row["op"] = Verdict(kind="check", case=row["case"]).op
    item.config._conformance_rows.append(row)


# ---- report collection (works under pytest-xdist: workers send rows to the controller)

def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workeroutput"):
        config.workeroutput["conformance_rows"] = json.dumps(config._conformance_rows, default=float)
        config.workeroutput["conformance_outcomes"] = json.dumps(config._outcomes)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    rows = node.workeroutput.get("conformance_rows") if hasattr(node, "workeroutput") else None
    if rows:
        node.config._conformance_rows.extend(json.loads(rows))
    outcomes = node.workeroutput.get("conformance_outcomes") if hasattr(node, "workeroutput") else None
    if outcomes:
        node.config._outcomes.update(json.loads(outcomes))


def _header(config):
    import jaxlib
    import mpmath
    import scipy

    h = {
        "profile": _profiles.describe(),
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
    tr = terminalreporter
    tr.section("verdict")
    tr.write_line(reporting.render_verdict_text(rows, f"profile {header['profile']}; implementation "
                                                      f"{config._impl_name}"))
    if config._baseline is not None:
        tr.write_line(f"baseline {config.getoption('--baseline')} ({_baseline.NOISE_RULE}):")
        better = _baseline.improvements(config._baseline, config._outcomes, rows)
        tr.write_line(f"  {len(better)} improvements" + "".join(f"\n  + {b}" for b in better[:20]))
        header["baseline"] = f"{config.getoption('--baseline')} ({len(better)} improvements; {_baseline.NOISE_RULE})"
        sections = {"Improvements over the baseline": better}
    out = config.getoption("--report-dir")
    if out:
        j, m = reporting.write_report(out, rows, header, sections if config._baseline is not None else None)
        tr.write_line(f"report written to {j} and {m} (the tables: {m})")
    else:
        tr.write_line("the tables: --report-dir DIR writes them (report.md, report.json)")
    path = config.getoption("--record-baseline")
    if path:
        tr.write_line(f"baseline written to {_baseline.write(path, config._outcomes, rows, header)}")
