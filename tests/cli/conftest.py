"""Fixtures of the command-line, demo and end-to-end tests."""
