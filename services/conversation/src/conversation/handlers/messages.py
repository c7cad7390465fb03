"""Messages: one handler, one module per concern.

sending (lone sends, thread replies, the group commit), history, editing
(edits and deletes), reactions, read state, search and event replay.
"""

from __future__ import annotations

from conversation.handlers.history import History, Page
from conversation.handlers.reactions import Reacted, Reactions
from conversation.handlers.readstate import ReadState
from conversation.handlers.replay import EventPage, Replay
from conversation.handlers.search import Search
from conversation.handlers.sending import Sending, Sent

__all__ = ["EventPage", "MessageHandler", "Page", "Reacted", "Sent"]


class MessageHandler(Sending, History, Reactions, ReadState, Search, Replay):
    """Every message RPC; each concern's rules live in its own module."""
