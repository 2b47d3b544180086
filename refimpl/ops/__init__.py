"""Primitive operators, one module per family: ``*_forward`` returning ``(out, cache)`` directly
above ``*_backward(dout, cache)`` returning a NamedTuple of gradients (maths in derivations/).

May import only refimpl.validate; the registry pairing each operator with its oracle is refimpl.reference.registry.
"""
