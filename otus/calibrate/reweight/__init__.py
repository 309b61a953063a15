"""Classifier reweighting, one concept per module.

:mod:`~otus.calibrate.reweight.config` (the options and their defaults),
:mod:`~otus.calibrate.reweight.classifier` (the MC-vs-data classifier and its training),
:mod:`~otus.calibrate.reweight.fit` (the k-fold reweighter),
:mod:`~otus.calibrate.reweight.clipping` (reported clipping of the ratios),
:mod:`~otus.calibrate.reweight.diagnostics` (AUC, KS, ESS, ratio plots),
:mod:`~otus.calibrate.reweight.files` (fit and apply on event files).
The public API is re-exported by :mod:`otus.calibrate`; this package imports nothing, so
reading the options stays cheap.
"""
