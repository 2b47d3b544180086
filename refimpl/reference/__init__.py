"""Independent plain transcriptions of the SPEC formulas (the test oracles) and their registry entries."""
