"""Calibration of simulation toward data: classifier reweighting and ICNN optimal transport."""
