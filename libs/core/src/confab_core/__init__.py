"""Shared runtime for Confab services."""
