"""ICNN optimal-transport calibration, one concept per module.

:mod:`~otus.calibrate.ot.config` (the options and their defaults),
:mod:`~otus.calibrate.ot.dual` (the min-max dual as a Lightning module),
:mod:`~otus.calibrate.ot.map` (the fitted map and its file),
:mod:`~otus.calibrate.ot.fit` (fit a map between two samples),
:mod:`~otus.calibrate.ot.region` (the region-consistent fit),
:mod:`~otus.calibrate.ot.files` (fit and apply on event files).
The public API is re-exported by :mod:`otus.calibrate`; this package imports nothing, so
reading the options stays cheap.
"""
