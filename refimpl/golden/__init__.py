"""Golden values (SPEC 10): export a set, and check refimpl against one.

- :mod:`refimpl.golden.contract`: a case, the manifest's layout, the error
  metric and the pass rules;
- :mod:`refimpl.golden.primitive` and :mod:`refimpl.golden.composed`: the
  cases and evaluators of the primitive operators and the composed kinds;
- :mod:`refimpl.golden.catalog`: every case and kind of this version;
- :mod:`refimpl.golden.export` and :mod:`refimpl.golden.check`: the two commands.

Each case's *kind* names an evaluator that recomputes it from its stored
inputs, so ``check`` needs nothing but the directory.
"""
from refimpl.golden.catalog import all_cases, evaluators, kinds
from refimpl.golden.check import ArrayResult, CheckReport, check
from refimpl.golden.contract import (DEFAULT_RTOL, FLOAT32_FACTOR, FLOAT32_FLOOR, MANIFEST_FILE, SCHEMA_VERSION,
                                     CaseSpec, Evaluation, GoldenError, case_rng, float32_limit, float64_limit,
                                     read_manifest, sha256_array, source_sha256)
from refimpl.golden.export import export

__all__ = ["all_cases", "evaluators", "kinds", "ArrayResult", "CheckReport", "check", "DEFAULT_RTOL",
           "FLOAT32_FACTOR", "FLOAT32_FLOOR", "MANIFEST_FILE", "SCHEMA_VERSION", "CaseSpec", "Evaluation",
           "GoldenError", "case_rng", "float32_limit", "float64_limit", "read_manifest", "sha256_array",
           "source_sha256", "export"]
