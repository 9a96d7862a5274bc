"""App settings, read from environment variables (Azure Functions app settings).

Every setting the code reads is declared here and documented in local.settings.sample.json.
A missing or invalid setting raises :class:`SettingsError`, whose message names each setting and
what it expects, so start-up stops with something a person can act on.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "DUALSYNC_"
DEFAULT_MAPS_DIR = Path(__file__).resolve().parent.parent / "maps"


class AuthMode(StrEnum):
    CLIENT_SECRET = "client_secret"
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"
    STATIC_TOKEN = "static_token"  # the local emulators only


class DataverseBulkWrite(StrEnum):
    UPSERT_MULTIPLE = "upsert_multiple"  # one JSON request per chunk; $batch where it can't serve
    BATCH = "batch"  # $batch with continue-on-error, one part per row


class StateBackend(StrEnum):
    SQLITE = "sqlite"
    TABLE = "table"


class TransportKind(StrEnum):
    LOCAL = "local"
    SERVICEBUS = "servicebus"


class SettingsError(Exception):
    """Raised when settings are missing or invalid; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


class Settings(BaseSettings):
    """All settings. Environment variable = ``DUALSYNC_`` + field name in upper case."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", case_sensitive=False, env_ignore_empty=True)

    # --- the two environments -------------------------------------------------------------------
    dataverse_url: AnyHttpUrl = Field(
        description="Dataverse environment URL, e.g. https://contoso.crm.dynamics.com"
    )
    finance_url: AnyHttpUrl = Field(
        description="Finance environment URL, e.g. https://contoso.operations.dynamics.com"
    )
    finance_default_company: str = Field(
        "usmf", min_length=1, max_length=4, description="Finance legal entity (dataAreaId) of the service user"
    )

    # --- identity ---------------------------------------------------------------------------------
    auth_mode: AuthMode = Field(AuthMode.MANAGED_IDENTITY, description="how to get tokens")
    tenant_id: str | None = Field(None, description="Entra tenant id (client_secret, certificate)")
    client_id: str | None = Field(
        None, description="app registration or user-assigned identity client id"
    )
    client_secret: SecretStr | None = Field(None, description="client secret (client_secret mode)")
    client_certificate_path: Path | None = Field(None, description="PEM certificate (certificate mode)")
    static_token: SecretStr | None = Field(None, description="bearer token the emulators accept")

    # --- HTTP behaviour ---------------------------------------------------------------------------
    http_timeout_seconds: float = Field(30.0, gt=0, le=600)
    retry_budget_seconds: float = Field(
        120.0, gt=0, le=3600, description="total time one call may spend retrying"
    )
    max_concurrency: int = Field(16, ge=1, le=256, description="ceiling of requests in flight per service")
    batch_size: int = Field(
        200, ge=1, le=1000,
        description="rows per $batch / UpsertMultiple request (200: chosen by the connectors bench's "
                    "sweep, docs/connectors.md)",
    )
    dataverse_bulk_write: DataverseBulkWrite = Field(
        DataverseBulkWrite.UPSERT_MULTIPLE,
        description="how batched Dataverse upserts are sent: upsert_multiple (UpsertMultiple per chunk; a "
                    "failed chunk is re-sent as $batch to find its bad rows, and a table that doesn't support "
                    "the message uses $batch from then on) or batch ($batch only)",
    )
    dependency_retry_attempts: int = Field(
        12, ge=0, le=50,
        description="times a change waiting for its parent (or a referenced row) is scheduled again before "
                    "it is dead-lettered as dependency-missing",
    )
    retry_base_delay_seconds: float = Field(
        5.0, gt=0, le=3600,
        description="first delay of a rescheduled change; each further attempt doubles it (up to 15 min)",
    )

    # --- catalog ----------------------------------------------------------------------------------
    maps_dir: Path = Field(DEFAULT_MAPS_DIR, description="folder of map files")

    # --- state store and transport ----------------------------------------------------------------
    state_backend: StateBackend = Field(StateBackend.SQLITE)
    state_sqlite_path: Path = Field(Path(".dualsync/state.sqlite"))
    state_table_connection: SecretStr | None = Field(
        None, description="Table Storage connection string (defaults to AzureWebJobsStorage)"
    )
    state_table_endpoint: str | None = Field(
        None, description="Table endpoint for managed identity, e.g. https://acct.table.core.windows.net"
    )
    state_table_prefix: str = Field(
        "dualsync", pattern=r"^[A-Za-z][A-Za-z0-9]{0,49}$", description="prefix of the state tables"
    )
    transport: TransportKind = Field(TransportKind.LOCAL)
    servicebus_connection: SecretStr | None = Field(
        None, description="Service Bus connection string (or use servicebus_namespace with managed identity)"
    )
    servicebus_namespace: str | None = Field(
        None, description="fully qualified namespace for managed identity, e.g. ns.servicebus.windows.net"
    )
    broker_path: Path = Field(Path(".dualsync/broker.sqlite"))
    change_topic: str = Field("dualsync-changes", min_length=1, max_length=260)
    ingress_queue_dataverse: str = Field("dualsync-dataverse-ingress")
    ingress_queue_finance: str = Field("dualsync-finance-ingress")
    work_queue: str = Field("dualsync-work", description="queue of distributed initial-sync work items")

    # --- inbound notifications --------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        None, description="optional shared secret expected in the x-dualsync-key header"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest webhook/event body accepted")

    # --- polling timers (catch what a missed webhook or event did not say) -------------------------
    pull_schedule: str = Field(
        "0 */5 * * * *", description="NCRONTAB (seconds first, UTC) of the change-tracking / watermark timers"
    )
    page_size: int = Field(5000, ge=1, le=5000, description="rows per page when reading (odata.maxpagesize)")
    pull_budget_seconds: float = Field(
        240.0, gt=0, le=3600, description="wall-clock budget of one timer run; the next run resumes where it stopped"
    )
    pull_max_rows: int = Field(50_000, ge=1, description="rows one timer run reads at most (checked between pages)")
    pull_overlap_seconds: float = Field(
        300.0, ge=0, le=86_400,
        description="Finance watermark pulls re-read this far back (rows committed late are not missed)",
    )

    # --- initial sync -----------------------------------------------------------------------------
    initial_sync_concurrency: int = Field(
        4, ge=1, le=64, description="batches of one map written at the same time during initial sync"
    )
    initial_sync_range_rows: int = Field(
        50_000, ge=1_000, le=10_000_000,
        description="distributed initial sync: a legal entity's rows are cut into key ranges of about this many "
                    "rows, one work item each",
    )

    # --- telemetry --------------------------------------------------------------------------------
    telemetry_enabled: bool = Field(
        False, description="send traces to Application Insights (needs APPLICATIONINSIGHTS_CONNECTION_STRING)"
    )

    @field_validator("pull_schedule")
    @classmethod
    def _ncrontab(cls, v: str) -> str:
        # Azure Functions timers take six fields, seconds first; five-field cron is a common mistake.
        if len(v.split()) != 6:
            raise ValueError("give an NCRONTAB expression of six fields, seconds first, e.g. '0 */5 * * * *'")
        return v

    @field_validator("dataverse_url", "finance_url")
    @classmethod
    def _no_path(cls, v: AnyHttpUrl) -> AnyHttpUrl:
        if v.path not in (None, "", "/"):
            raise ValueError("give the environment root URL without a path")
        return v

    def azure_credential_kwargs(self) -> dict[str, str]:
        """``DefaultAzureCredential`` arguments for Azure resources (Table Storage, Service Bus): ``client_id``
        names a user-assigned identity only in managed_identity mode; in client_secret/certificate mode it is
        the app registration's id, which the credential would wrongly try as a managed identity."""
        if self.auth_mode is AuthMode.MANAGED_IDENTITY and self.client_id:
            return {"managed_identity_client_id": self.client_id}
        return {}

    def check_auth(self) -> list[str]:
        """Cross-field rules pydantic cannot express per field."""
        need: dict[AuthMode, tuple[str, ...]] = {
            AuthMode.CLIENT_SECRET: ("tenant_id", "client_id", "client_secret"),
            AuthMode.CERTIFICATE: ("tenant_id", "client_id", "client_certificate_path"),
            AuthMode.STATIC_TOKEN: ("static_token",),
            AuthMode.MANAGED_IDENTITY: (),
        }
        return [
            f"{PREFIX}{name.upper()}: required when {PREFIX}AUTH_MODE={self.auth_mode.value}"
            for name in need[self.auth_mode]
            if getattr(self, name) in (None, "")
        ]


def _describe(error: Any) -> str:
    field = ".".join(str(p) for p in error["loc"])
    env = f"{PREFIX}{field.upper()}"
    info = Settings.model_fields.get(field)
    expected = f" (expected: {info.description})" if info is not None and info.description else ""
    if error["type"] == "missing":
        return f"{env}: missing{expected}"
    return f"{env}: {error['msg']}{expected}"


def load_settings(**overrides: object) -> Settings:
    """Read and check settings; raise SettingsError naming every bad or missing setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError([_describe(e) for e in exc.errors(include_url=False)]) from None
    problems = settings.check_auth()
    if problems:
        raise SettingsError(problems)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
