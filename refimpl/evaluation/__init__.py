"""Evaluation of update rules, one job per module:

- :mod:`.fewshot`: apply a rule to a base model; the few-shot readout (the meta-objective's own readout);
- :mod:`.baselines`: raw inputs, ink, PCA, VAE, supervised training on the K-shot labels;
- :mod:`.diagnostics`: effective rank, mean |correlation|, zero rows; J of random, collapsed and ink features;
- :mod:`.benchmark`: a rule against every baseline on one dataset, paired over seeds;
- :mod:`.metaseeds`: one recipe's meta-training seeds: the mean and spread of their gains;
- :mod:`.reporting`: Markdown/JSON tables with the collapse line, and plots;
- :mod:`.results_page`: docs/results.md and the README's results summary, generated from a report's JSON;
- :mod:`.suite`: ``refimpl eval`` and :func:`~refimpl.evaluation.suite.evaluate_rule`;
- :mod:`.demo`: ``make demo``;
- :mod:`.probe`: the diagnostics logged on a fixed task during meta-training.
"""
