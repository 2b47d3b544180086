"""Golden values (docs/golden.md, SPEC 10): export a set, check refimpl against one, verify a port.

Tooling: may import every layer; format and verifier import NumPy and the standard library only
(and refimpl.npzio, refimpl.metric and refimpl.runtime, which do the same; tqdm for progress).

- :mod:`refimpl.golden.format`: the manifest's layout, reading case files,
  the error metric and the pass rules (NumPy only);
- :mod:`refimpl.golden.verifier`: the port author's verifier, ``verify(dir,
  backend)`` and the pytest helpers, and the result types, limits and
  summaries the checker shares (NumPy only: no refimpl compute, no autograd);
- :mod:`refimpl.golden.contract`: what export and check add (a case to
  export, an evaluator's result, the cotangent seeding, the source hash);
- :mod:`refimpl.golden.primitive` and :mod:`refimpl.golden.composed`: the
  cases and evaluators of the primitive operators and the composed kinds;
- :mod:`refimpl.golden.catalog`: every case and kind of this version;
- :mod:`refimpl.golden.exporter` and :mod:`refimpl.golden.checker`: the two
  commands that run refimpl (``export`` and ``check``; the checker judges
  refimpl with the verifier's types).

Each case's *kind* names an evaluator that recomputes it from its stored
inputs, so ``check`` needs nothing but the directory. The names below are
imported on first use, so that importing this package (as the verifier does)
imports no compute.
"""
_HOME = {
    # NumPy only
    "DEFAULT_RTOL": "format", "FLOAT32_FACTOR": "format", "FLOAT32_FLOOR": "format", "MANIFEST_FILE": "format",
    "SCHEMA_VERSION": "format", "SMALL_CASE_WIDTH": "format", "GoldenError": "format", "float32_limit": "format",
    "float64_limit": "format", "array_limit": "format", "cast_floats": "format", "read_manifest": "format",
    "read_case": "format", "sha256_array": "format",
    "verify": "verifier", "VerifyReport": "verifier", "Report": "verifier", "CaseVerdict": "verifier",
    "ArrayVerdict": "verifier", "golden_cases": "verifier", "check_case": "verifier", "load_backend": "verifier",
    "implements": "verifier",
    # these run refimpl
    "CaseSpec": "contract", "Evaluation": "contract", "case_rng": "contract", "source_sha256": "contract",
    "all_cases": "catalog", "evaluators": "catalog", "kinds": "catalog",
    "CheckReport": "checker", "check": "checker", "export": "exporter",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'refimpl.golden' has no attribute {name!r}")
    if home == "format":
        from refimpl.golden import format as module
    elif home == "verifier":
        from refimpl.golden import verifier as module
    elif home == "contract":
        from refimpl.golden import contract as module
    elif home == "catalog":
        from refimpl.golden import catalog as module
    elif home == "checker":
        from refimpl.golden import checker as module
    else:
        from refimpl.golden import exporter as module
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
