"""The conversation service's clients of its peers (compliance jobs only)."""
