"""Input limits, the one definition: the gateway validates with them before calling and
each service checks them again, so the two can never disagree. docs/api.md lists them."""

# Characters (code points) after trimming.
MAX_TEXT_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_TOPIC_CHARS = 250
MAX_QUERY_CHARS = 200
MAX_EMOJI_CHARS = 64
MAX_CUSTOM_STATUS_CHARS = 100
MAX_URL_CHARS = 2048
MAX_FILE_NAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 127
# Any id a client names: conversation, message, user, client_msg_id.
MAX_ID_CHARS = 128
MAX_CLIENT_MSG_ID_CHARS = MAX_ID_CHARS
MAX_FILE_BYTES = 5 * 1024**3
# Members named when creating a conversation or adding members in one call.
MAX_USER_IDS = 1000
MAX_MEMBERS_AT_CREATE = MAX_USER_IDS
MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_REACTIONS_PER_MESSAGE = 50
MAX_SEARCH_TERMS = 8
MAX_PRESENCE_IDS = 500
# Connections in one presence heartbeat; a gateway with more splits its beat.
MAX_HEARTBEAT_CONNECTIONS = 20_000
# Characters of a context link's kind (the host app's object type).
MAX_CONTEXT_KIND_CHARS = 64
# A moderation reason: a report's, a mute's or a ban's.
MAX_REASON_CHARS = 500
# Support desk: a ticket's tags, a tenant's categories.
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_CATEGORIES = 100
MAX_CATEGORY_CHARS = 64
# Protobuf int64: larger numbers cannot even be put in a request.
MAX_INT64 = 2**63 - 1
