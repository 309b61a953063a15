"""Calibration of simulation toward data: classifier reweighting and OT calibration."""
