"""Typed clients of the services presence calls."""
