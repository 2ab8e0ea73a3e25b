"""Adapters that put other libraries' layers behind the functional contract of ``impl.functional``.

Each module here is an implementation the conformance suite can judge
(``pytest --impl adapters.jax_nn``) and ``python -m tools.report`` can rank.
An adapter maps the contract's names, keyword parameters and conventions onto
one peer library, states the peer's own defaults in its docstring and
converts them, so that like is compared with like; where the peer cannot
express a case it raises ``NotImplementedError`` with the reason, and the
suite skips that case naming it.

* ``jax_nn``: ``jax.nn`` (and ``jnp.tanh``)
* ``flax_nnx``: ``flax.nnx`` (its activation functions are ``jax.nn``'s own objects)
* ``equinox_nn``: ``equinox.nn`` (only what equinox itself defines)
* ``brainstate_nn``: ``brainstate.nn``
* ``torch_functional``: ``torch.nn.functional`` on CPU (not a JAX function:
  ``CONFORMANCE_CAPABILITIES = {"jax_transforms": False}``)

The peers are optional dependencies (``pip install -e '.[peers]'``); importing
an adapter whose peer is missing raises ``ImportError``.
"""
