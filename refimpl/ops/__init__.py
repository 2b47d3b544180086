"""Primitive operators, each a ``*_forward`` returning ``(out, cache)`` and a
``*_backward(dout, cache)`` returning a NamedTuple of gradients.

See ``derivations/`` for the math behind each backward and
``refimpl.ops.registry`` for the list of operators.
"""
