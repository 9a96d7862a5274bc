"""App settings as the Functions host sees them: ``%NAME%`` in binding values resolves to a setting.

The real host reads app settings (environment variables; locally, ``local.settings.json`` Values).
The dev host reads the environment first, then a fallback mapping: by default the function app's own
settings (their defaults included), so the host consumes the topic the app publishes to even when
the environment leaves a setting at its default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PLACEHOLDER = re.compile(r"%([^%]+)%")


class UnresolvedSettingError(Exception):
    """A binding names an app setting that has no value (the real host refuses to start the function)."""

    def __init__(self, function: str, setting: str):
        self.function, self.setting = function, setting
        super().__init__(f"function {function!r}: app setting {setting!r} has no value")


class AppSettings:
    """Look up app settings: the environment, then ``fallbacks``."""

    def __init__(self, fallbacks: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None):
        self.fallbacks = dict(fallbacks or {})
        self.environ = os.environ if environ is None else environ

    def get(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value not in (None, ""):
            return value
        return self.fallbacks.get(name)

    def resolve(self, value: Any, function: str) -> Any:
        """``%NAME%`` parts of a string replaced by the setting's value; other values unchanged."""
        if not isinstance(value, str):
            return value

        def repl(m: re.Match[str]) -> str:
            found = self.get(m.group(1))
            if found is None:
                raise UnresolvedSettingError(function, m.group(1))
            return found

        return _PLACEHOLDER.sub(repl, value)

    def disabled(self, function: str) -> bool:
        """``AzureWebJobs.<name>.Disabled`` = true turns a function off, as in Azure."""
        flag = self.get(f"AzureWebJobs.{function}.Disabled") or ""
        return flag.strip().lower() in ("1", "true")


def dualsync_setting_defaults() -> dict[str, str]:
    """``DUALSYNC_*`` names of the app's non-secret settings with their effective values."""
    from pydantic import SecretStr

    from shared.settings import PREFIX, get_settings

    settings = get_settings()
    out: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None or isinstance(value, SecretStr):
            continue
        out[f"{PREFIX}{name.upper()}"] = str(value.value if hasattr(value, "value") else value)
    return out


def load_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a ``local.settings.json`` (empty when the file does not exist)."""
    import json

    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    return {str(k): str(v) for k, v in values.items() if v not in (None, "")}
