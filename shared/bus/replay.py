"""Turning a dead letter back into a message for its original topic."""

from __future__ import annotations

from shared.bus.base import HEADER_DLQ_TOPIC
from shared.bus.message import IncomingMessage, OutgoingMessage

HEADER_REPLAYED_FROM = "calhub-replayed-from"


def replay_message(dead_letter: IncomingMessage) -> OutgoingMessage:
    """The original message (same key, value and event id) addressed to its original topic.

    Republishing to the original topic is safe for every group: groups that already handled the event skip it
    by their inbox; the group that dead-lettered it never recorded it, so it handles it now.
    Raises ValueError if the message is not a dead letter.
    """
    original = dead_letter.header(HEADER_DLQ_TOPIC)
    if original is None:
        raise ValueError("not a dead letter: no original-topic header")
    headers = tuple(h for h in dead_letter.headers if not h[0].startswith("calhub-dlq-"))
    position = f"{dead_letter.topic}/{dead_letter.partition}/{dead_letter.offset}"
    return OutgoingMessage(topic=original, key=dead_letter.key, value=dead_letter.value,
                           headers=headers + ((HEADER_REPLAYED_FROM, position.encode()),))
