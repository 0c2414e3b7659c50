"""Fixtures of the analysis tests (example data lives in `analysis.examples`)."""
