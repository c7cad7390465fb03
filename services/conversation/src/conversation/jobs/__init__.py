"""Asynchronous jobs (exports, erasures) and the retention scheduler."""
