"""MongoDB access per entity. Every repository is bound to one tenant."""
