"""Layer classes for the elementwise activations: thin, printable wrappers, built from the table
``impl._activations.LAYERS``.

Each class takes its op's parameters, with the op's defaults, checks them at construction with
the op's own checker (``_<op>_params``: the same rules and messages as the functional op), shows
them in ``repr``, and calls the op in ``__call__``.  A new activation needs no code here: its row
in ``LAYERS`` (and its checker, if it has parameters) is the whole of it.
"""

from __future__ import annotations

import inspect

from . import _activations as F
from ._module import Module

__all__ = [name for name, _, _ in F.LAYERS]


def _layer(name: str, op_name: str, doc: str) -> type:
    op = getattr(F, op_name)
    check = getattr(F, f"_{op_name}_params", None)
    # the op's parameters (its signature less ``x``; a jitted op keeps its Python signature), as
    # the checker declares them (with their types): the same names and defaults, or no class
    params = list(inspect.signature(op).parameters.values())[1:]
    if params and check is None:
        raise TypeError(f"impl._activations.{op_name} has parameters but no _{op_name}_params checker")
    if check is not None:
        declared = list(inspect.signature(check, eval_str=True).parameters.values())
        same = [(p.name, type(p.default), p.default) for p in declared] == \
            [(p.name, type(p.default), p.default) for p in params]
        if not same:
            raise TypeError(f"impl._activations._{op_name}_params declares {declared}, but {op_name} takes {params}")
        params = declared
    signature = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
                                  + [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params])

    def __init__(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as e:
            takes = (f"its parameters are {', '.join(p.name for p in params)}" if params
                     else "it takes no parameters")
            raise TypeError(f"{name}: {e}; {takes}") from None
        bound.apply_defaults()
        values = {k: v for k, v in bound.arguments.items() if k != "self"}
        for k, v in (check(**values) if check is not None else {}).items():
            setattr(self, k, v)

    def __call__(self, x):
        return op(x, **{p.name: getattr(self, p.name) for p in params})

    def extra_repr(self):
        return ", ".join(f"{p.name}={getattr(self, p.name)}" for p in params)

    __init__.__signature__ = signature
    namespace = {"__init__": __init__, "__call__": __call__, "__doc__": doc, "__module__": __name__,
                 "__qualname__": name}
    if params:
        namespace["extra_repr"] = extra_repr
    return type(name, (Module,), namespace)


for _name, _op, _doc in F.LAYERS:
    globals()[_name] = _layer(_name, _op, _doc)
del _name, _op, _doc
