"""What an accepted request produced."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.notification import ChangeNotification, OutboundMessage


@dataclass(frozen=True)
class IntakeResult:
    """Notifications to publish; ``ignored_reason`` says why there are none when that is expected
    (a table whose maps never take Dataverse as a source, Finance's activation test message)."""

    notifications: tuple[ChangeNotification, ...] = ()
    ignored_reason: str | None = None

    def messages(self) -> list[OutboundMessage]:
        return [n.to_message() for n in self.notifications]
