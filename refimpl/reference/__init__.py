"""The oracles (plain autograd transcriptions of the SPEC formulas, one per operator and composed stage),
the operator registry pairing them with refimpl.ops, and the checks built on it (gradcheck, ops_report).

May import refimpl.ops, validate, config and params; never base_model, rule or meta (the oracle stays
independent of the code it checks).

One formula, one oracle: a composed oracle (update_step.py, meta_objective.py) imports the oracle of
each primitive it uses from the module beside it, in its vectorised form (``*_vectorized``, checked
against the looped ``*_reference`` in tests/test_ops.py) or the ``*_reference`` itself where that is
already vectorised. It writes a formula out itself only where no primitive oracle computes it: the
composition (the base model's layer loop, the SPEC 5 merge of the planes, the unroll), one-line
helpers that are no registry operator (relu inside the conv blocks, the ones column of the ridge
readout), and error_prop's gate sigmoid, written as 0.5 (tanh(z / 2) + 1): equal to the activation
oracle's 1 / (1 + exp(-z)) but not in its bits, and the golden ComputeH cases take their d inputs from
this oracle (refimpl/golden/composed.py), so its form stays.
"""
