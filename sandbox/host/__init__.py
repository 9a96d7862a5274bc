"""The dev host: runs the function app locally (HTTP, Service Bus triggers on the embedded broker,
timers), since Core Tools and the Service Bus emulator are not available here. See docs/devhost.md."""

from .appsettings import AppSettings, UnresolvedSettingError
from .discovery import HostedFunction, Inventory, Kind, discover
from .host import DevHost
from .keys import DEFAULT_KEYS_PATH, AuthLevel, HostKeys, KeysFileError
from .servicebus import map_filter
from .thread import HostHandle, start_in_thread

__all__ = [
    "DEFAULT_KEYS_PATH",
    "AppSettings",
    "AuthLevel",
    "DevHost",
    "HostHandle",
    "HostKeys",
    "HostedFunction",
    "Inventory",
    "KeysFileError",
    "Kind",
    "UnresolvedSettingError",
    "discover",
    "map_filter",
    "start_in_thread",
]
