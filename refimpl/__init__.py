"""refimpl: reference implementation of Metz et al. (ICLR 2019), plain NumPy.

Layers (tests/test_layers.py): validate, npzio -> ops -> config, params -> model.base_model -> rule
-> model.meta_objective -> model.unroll -> train, evaluation, golden, cli; reference beside ops.
"""
__version__ = "0.1.0"
