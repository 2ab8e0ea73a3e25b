"""The conformance suite of vetted-layers, as an installed wheel carries it.

``vetted_layers_suite/suite/`` holds the suite laid out as in the project's
repository: ``tools/``, ``tests/``, ``reference/``, ``adapters/``, the golden
data in ``golden/`` and ``pyproject.toml`` (pytest's settings).  Its modules
import one another by their repository names (``tools.golden``,
``tests.helpers``), so they are importable only in the processes that
``vetted-layers-conformance`` (``vetted_layers_suite.conformance``) starts
with the suite's folder on the path; importing ``impl`` or this package
imports none of them and claims no other top-level name.
"""
