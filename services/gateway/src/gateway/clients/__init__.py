"""The services behind the gateway: one typed client per peer (conversation,
presence, notification, bot), each call signed for the caller it acts for;
``ChatOps`` (ops.py) is what REST routes and socket events share on top."""
