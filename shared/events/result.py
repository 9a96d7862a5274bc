"""What an accepted request produced."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.control import ControlStamp
from shared.events.notification import ChangeNotification
from shared.transport.messages import OutboundMessage


@dataclass(frozen=True)
class IntakeResult:
    """Notifications to publish; ``ignored_reason`` says why there are none when that is expected
    (a table whose maps never take Dataverse as a source, Finance's activation test message).

    ``control`` is set for Finance business events: publish only if the tracker lets it pass
    (:func:`shared.events.publish.deliver`)."""

    notifications: tuple[ChangeNotification, ...] = ()
    ignored_reason: str | None = None
    control: ControlStamp | None = None

    def messages(self) -> list[OutboundMessage]:
        return [n.to_message() for n in self.notifications]
