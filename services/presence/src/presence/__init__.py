"""Confab presence service: who is online, on how many devices, and since when."""
