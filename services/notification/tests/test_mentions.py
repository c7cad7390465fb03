from notification.mentions import mentioned_user_ids, mentions


def test_finds_mentions_at_word_starts() -> None:
    assert mentioned_user_ids("hi @bob and @carol.") == {"bob", "carol"}


def test_strips_trailing_punctuation() -> None:
    assert mentioned_user_ids("(ping @bob), @dave! @eve?") == {"bob", "dave", "eve"}


def test_ignores_email_addresses_and_lone_at_signs() -> None:
    assert mentioned_user_ids("write to bob@example.com @ noon") == set()


def test_keeps_opaque_ids_whole() -> None:
    assert mentioned_user_ids("@user-42 @a.b_c @auth0|123") == {"user-42", "a.b_c", "auth0|123"}


def test_mentions_is_exact() -> None:
    assert mentions("hey @bobby", "bobby")
    assert not mentions("hey @bobby", "bob")
    assert not mentions("no mention here", "bob")


def test_start_of_line_and_newlines() -> None:
    assert mentioned_user_ids("@bob\n@carol:") == {"bob", "carol"}
