"""Bearer tokens for Dataverse and Finance.

Entra ID modes (client secret, certificate, managed identity) go through azure-identity's aio
credentials with scope ``<environment URL>/.default``. One credential per process (tokens are cached
by the credential and by :class:`EntraTokens`, refreshed 5 minutes before expiry). ``static_token``
mode hands the configured token to the emulators so the same request path runs locally.

A 401 makes the connector call ``token(rejected=<the token that got the 401>)`` once, which fetches a
new one unless another task already did; a second 401 is an auth error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.credentials import AccessToken
from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

from shared.settings import AuthMode, Settings

REFRESH_MARGIN_SECONDS = 300.0  # same margin azure-identity uses for proactive refresh


class TokenProvider(Protocol):
    async def token(self, *, rejected: str | None = None) -> str: ...


class StaticToken:
    """A fixed bearer token (the local emulators). Refreshing can't help, so it returns the same."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, *, rejected: str | None = None) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(***)"


class AsyncCredential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken: ...


def scope_for(environment_url: str) -> str:
    """``https://org.crm.dynamics.com/.default`` from the environment URL (any trailing slash)."""
    return environment_url.rstrip("/") + "/.default"


class EntraTokens:
    """Tokens for one environment from an azure-identity credential, cached until near expiry."""

    def __init__(
        self, credential: AsyncCredential, environment_url: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._credential = credential
        self.scope = scope_for(environment_url)
        self._clock = clock
        self._cached: AccessToken | None = None
        self._lock: asyncio.Lock | None = None

    async def token(self, *, rejected: str | None = None) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._cached
            if (
                current is not None
                and current.expires_on - self._clock() > REFRESH_MARGIN_SECONDS
                and current.token != rejected  # another task may already have replaced it
            ):
                return current.token
            self._cached = await self._credential.get_token(self.scope)
            return self._cached.token

    def __repr__(self) -> str:
        return f"EntraTokens(scope={self.scope!r})"


_credentials: dict[tuple[Any, ...], AsyncCredential] = {}


def credential_for(settings: Settings) -> AsyncCredential:
    """The process-wide credential for ``settings.auth_mode`` (one per identity, reused)."""
    mode = settings.auth_mode
    ident = (mode, settings.tenant_id, settings.client_id, str(settings.client_certificate_path or ""))
    if ident in _credentials:
        return _credentials[ident]
    credential: AsyncCredential
    if mode is AuthMode.CLIENT_SECRET:
        assert settings.tenant_id and settings.client_id and settings.client_secret
        credential = ClientSecretCredential(
            settings.tenant_id, settings.client_id, settings.client_secret.get_secret_value()
        )
    elif mode is AuthMode.CERTIFICATE:
        assert settings.tenant_id and settings.client_id and settings.client_certificate_path
        credential = CertificateCredential(
            settings.tenant_id, settings.client_id, certificate_path=str(settings.client_certificate_path)
        )
    elif mode is AuthMode.MANAGED_IDENTITY:
        credential = ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id \
            else ManagedIdentityCredential()
    else:
        raise ValueError(f"auth mode {mode.value} has no Entra credential")
    _credentials[ident] = credential
    return credential


def token_provider(settings: Settings, environment_url: str) -> TokenProvider:
    """Tokens for one environment (Dataverse or Finance) as the settings say."""
    if settings.auth_mode is AuthMode.STATIC_TOKEN:
        assert settings.static_token is not None
        return StaticToken(settings.static_token.get_secret_value())
    return EntraTokens(credential_for(settings), environment_url)


async def close_credentials() -> None:
    """Close the process's credentials (their HTTP sessions); for shutdown and tests."""
    creds = list(_credentials.values())
    _credentials.clear()
    for cred in creds:
        close = getattr(cred, "close", None)
        if close is not None:
            await close()
