"""Lowering graphs to Numba source: schedule (fused loops, calls), emission, disk cache."""
