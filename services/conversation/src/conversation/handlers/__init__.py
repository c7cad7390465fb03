"""Business logic of the conversation service."""
