"""Input limits, documented in docs/api.md; the gateway enforces the same ones."""

MAX_TEXT_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_CLIENT_MSG_ID_CHARS = 128
MAX_MEMBERS_AT_CREATE = 1000
MAX_PAGE = 100
DEFAULT_PAGE = 50
# The bot's user id in every tenant; it cannot be a JWT subject (see auth).
BOT_USER_ID = "confab-bot"
MAX_TOPIC_CHARS = 250
MAX_EMOJI_CHARS = 64
MAX_REACTIONS_PER_MESSAGE = 50
MAX_SEARCH_TERMS = 8
