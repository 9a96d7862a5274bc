"""Function and master keys, kept in a local keys file (created with random keys, mode 0600).

The file is the dev host's stand-in for the host's key store; keys never appear in logs or output.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

DEFAULT_KEYS_PATH = Path(".dualsync/host-keys.json")


class AuthLevel(StrEnum):
    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: object) -> AuthLevel:
        text = str(getattr(value, "value", value) or "function").lower()
        return cls(text)


class KeysFileError(Exception):
    """The keys file exists but cannot be read as a keys file."""


def _new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class HostKeys:
    master_key: str
    function_keys: dict[str, str] = field(default_factory=dict)  # host-level function keys by name

    @property
    def function_key(self) -> str:
        return self.function_keys.get("default") or next(iter(self.function_keys.values()))

    @classmethod
    def load_or_create(cls, path: Path) -> HostKeys:
        """Read ``path``; on first start write fresh random keys there, readable by the owner only."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls._create(path)
        except (OSError, ValueError) as exc:
            raise KeysFileError(f"cannot read the keys file {path}: {type(exc).__name__}") from None
        try:
            keys = cls(master_key=str(data["masterKey"]),
                       function_keys={str(k): str(v) for k, v in data["functionKeys"].items()})
        except (KeyError, TypeError, AttributeError):
            raise KeysFileError(f"{path} is not a keys file (masterKey, functionKeys)") from None
        if not keys.master_key or not keys.function_keys:
            raise KeysFileError(f"{path} has an empty masterKey or no functionKeys")
        return keys

    @classmethod
    def _create(cls, path: Path) -> HostKeys:
        keys = cls(master_key=_new_key(), function_keys={"default": _new_key()})
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"masterKey": keys.master_key, "functionKeys": keys.function_keys}, indent=2)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another host created it first: use theirs
            return cls.load_or_create(path)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)  # the umask cannot widen it, but be explicit
        return keys

    def allows(self, level: AuthLevel, presented: str | None) -> bool:
        """Whether ``presented`` opens a function of ``level`` (compared in constant time)."""
        if level is AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        given = presented.encode("utf-8")
        ok = hmac.compare_digest(given, self.master_key.encode("utf-8"))
        if level is AuthLevel.FUNCTION:
            for key in self.function_keys.values():
                ok |= hmac.compare_digest(given, key.encode("utf-8"))  # no early exit: same time per key
        return ok
