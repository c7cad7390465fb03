"""Redis access, scoped by tenant by construction (see keys.py and presence.py)."""
