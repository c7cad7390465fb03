"""Confab conversation service."""
