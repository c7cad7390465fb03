"""Confab gateway: the only public service."""
