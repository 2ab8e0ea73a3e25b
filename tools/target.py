"""The implementation under test: ``--impl SPEC`` resolved to an object exposing the functional API.

``SPEC`` is ``package.module`` (the module itself) or ``package.module:ATTRIBUTE``
(an object inside it: a namespace, a class instance, a submodule; dotted
attribute paths such as ``module:outer.inner`` are followed).  The object
"provides" an op when it has a callable attribute of the op's name; an
attribute that is missing or ``None`` means "not provided", and the op's
cases are skipped with "OP not provided by SPEC".

Optional attributes of the object (or, when the object lacks them, of its
module):

* ``CONFORMANCE_CAPABILITIES``: a dict of capability flags, see ``CAPABILITIES``.
* ``CONFORMANCE_PEER``: one line naming what is really under test (library,
  version, backend), shown in the report header and the leaderboard.
* ``CONFORMANCE_VARIANT_OF``: ``"impl.functional"`` for a variant of it (the
  mutants of ``tools.mutants``): the registry's known failures, measured on
  impl.functional, then apply to it as they do to impl.functional (strict
  xfail); for any other implementation they do not, and it must meet every
  budget.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["CAPABILITIES", "load", "capabilities", "peer", "variant_of", "provided", "module_of"]

# name -> (default, what it means)
CAPABILITIES = {
    "jax_transforms": (True, "the functions are JAX functions: they can be traced by jax.jit, jax.vmap, "
                             "jax.grad and run on sharded arrays"),
}


def load(spec: str):
    """The object named by ``spec`` (see module docstring); ``ValueError`` naming the fix otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--impl {spec!r}: expected 'package.module' or 'package.module:ATTRIBUTE'")
    mod_name, _, attr = spec.partition(":")
    if not mod_name:
        raise ValueError(f"--impl {spec!r}: the module part before ':' is empty; "
                         "expected 'package.module' or 'package.module:ATTRIBUTE'")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"--impl {spec}: cannot import {mod_name!r} ({e}); pass an importable module "
                         "(is the package installed, is the repository root on sys.path?)") from None
    except Exception as e:  # the module exists but raised while being imported
        raise ValueError(f"--impl {spec}: importing {mod_name!r} raised {type(e).__name__}: {e}; "
                         "fix the module (or pass another one)") from None
    if attr:
        for part in attr.split("."):
            if not part.isidentifier():
                raise ValueError(f"--impl {spec}: {attr!r} is not an attribute path; "
                                 "expected 'package.module:NAME' or 'package.module:NAME.SUBNAME'")
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ValueError(f"--impl {spec}: {mod_name} has no attribute {attr!r}; "
                                 f"names it has: {', '.join(n for n in dir(obj) if not n.startswith('_'))}") \
                    from None
    capabilities(obj, spec)  # validate early: a typo in a capability name is a usage error
    return obj


def module_of(obj):
    if isinstance(obj, type(sys)):
        return obj
    return sys.modules.get(getattr(obj, "__module__", None) or "")


def _declared(obj, name):
    v = getattr(obj, name, None)
    if v is None:
        m = module_of(obj)
        v = getattr(m, name, None) if m is not None else None
    return v


def capabilities(obj, spec: str = "") -> dict:
    """The object's capability flags, defaults filled in; ``ValueError`` for unknown names or values."""
    declared = _declared(obj, "CONFORMANCE_CAPABILITIES") or {}
    if not isinstance(declared, dict):
        raise ValueError(f"--impl {spec}: CONFORMANCE_CAPABILITIES must be a dict such as "
                         f"{{'jax_transforms': False}}, got {type(declared).__name__}")
    unknown = sorted(set(declared) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"--impl {spec}: unknown capabilities {unknown} in CONFORMANCE_CAPABILITIES; "
                         f"known: {', '.join(sorted(CAPABILITIES))}")
    out = {}
    for k, (default, _) in CAPABILITIES.items():
        v = declared.get(k, default)
        if not isinstance(v, bool):
            raise ValueError(f"--impl {spec}: CONFORMANCE_CAPABILITIES[{k!r}] must be True or False, got {v!r}")
        out[k] = v
    return out


def peer(obj) -> str:
    """``CONFORMANCE_PEER`` of the object (or its module), else ''."""
    v = _declared(obj, "CONFORMANCE_PEER")
    return str(v) if v else ""


def variant_of(obj) -> str:
    """``CONFORMANCE_VARIANT_OF`` of the object (or its module), else ''."""
    v = _declared(obj, "CONFORMANCE_VARIANT_OF")
    return str(v) if v else ""


def provided(obj, name: str, spec: str = ""):
    """The callable ``obj.name``, or ``None`` when the object does not provide it (no such
    attribute, or ``None``); ``TypeError`` when the attribute is something else."""
    fn = getattr(obj, name, None)
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"--impl {spec}: {name} is a {type(fn).__name__}, not a function; define {name}(x, ...) "
                        f"as in impl.functional, or set {name} = None (or leave it out) to skip its cases")
    return fn
