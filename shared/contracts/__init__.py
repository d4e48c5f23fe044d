"""Published event contracts: one module per producing service. Importing this package registers them all."""

from shared.contracts import authorizations, claims, eligibility, gateway, referrals
from shared.contracts.base import EVENT_TYPES, EventData, EventTypeRegistry, Topic, UnknownEventType, event

__all__ = [
    "EVENT_TYPES",
    "EventData",
    "EventTypeRegistry",
    "Topic",
    "UnknownEventType",
    "authorizations",
    "claims",
    "eligibility",
    "event",
    "gateway",
    "referrals",
]
