"""The one typed settings object (env prefix ``PANCREAS_AI_``, optional TOML file).

Each default is defined here once. ``main()`` builds a :class:`Settings` and passes it down;
no module keeps its own copy.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pancreas_contracts.boards import NotificationEvent

__all__ = [
    "AE_TITLE_MAX_LENGTH",
    "DicomDestination",
    "NotificationChannel",
    "Settings",
    "clean_ae_title",
    "load_settings",
]

#: Longest AE title (PS3.5 6.2, value representation AE).
AE_TITLE_MAX_LENGTH = 16


def clean_ae_title(value: object) -> str | None:
    """``value`` as an AE title without its padding, or ``None`` when it is not a valid one.

    An AE (PS3.5 6.2) is 1-16 characters of the default character repertoire (printable
    ASCII) without backslash or control characters; leading and trailing spaces are padding.
    Nothing is truncated: a longer value is not an AE title.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    text = value.strip(" ")
    if not 1 <= len(text) <= AE_TITLE_MAX_LENGTH:
        return None
    if "\\" in text or not all(" " <= c <= "~" for c in text):
        return None
    return text


class DicomDestination(BaseSettings):
    """A C-STORE destination for result objects."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    ae_title: str = "ORTHANC"
    host: str = "127.0.0.1"
    port: int = Field(default=4242, ge=1, le=65535)


class NotificationChannel(BaseModel):
    """Where the node sends notifications (issue 26): one apprise URL and its events.

    ``url`` is an apprise URL (``mailto://``, ``json://``, ``slack://``, ...); it may carry an
    SMTP password or a webhook token, so it is secret and never logged (logs name the
    channel). ``events`` are the events this channel gets (default: all). A message names the
    job or board only; ``include_study_uid`` lets a channel the site trusts also carry the
    StudyInstanceUID (in the text and the viewer link).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: SecretStr
    events: tuple[NotificationEvent, ...] = tuple(NotificationEvent)
    include_study_uid: bool = False


class Settings(BaseSettings):
    """Node-wide configuration.

    Every field may be set with an environment variable ``PANCREAS_AI_<FIELD>`` or in the TOML
    file passed with ``--config``.

    ``relay_ae_titles`` lists the calling AE titles trusted to name the AE that originated a
    transfer (for example Orthanc forwarding a scanner's series). When such a caller's C-STORE
    request carries a *Move Originator Application Entity Title* (0000,1030; PS3.7 9.1.1.1,
    Table 9.1-1), the node records that AE title as the instance's ``calling_ae``, the value
    routing rules test; any other caller's Move Originator is ignored. The allow-list
    (``allowed_callers``) always checks the association's own calling AE title. An empty list
    trusts no relay. Environment: ``PANCREAS_AI_RELAY_AE_TITLES='["ORTHANC"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="PANCREAS_AI_", frozen=True, extra="forbid")

    data_dir: Path = Path("data")
    ae_title: str = Field(default="PANCREAS_AI", min_length=1, max_length=16)
    port: int = Field(default=11112, ge=1, le=65535)
    bind_address: str = "127.0.0.1"
    allowed_callers: list[str] = Field(default_factory=list)
    relay_ae_titles: list[str] = Field(default_factory=lambda: ["ORTHANC"])
    allowed_addresses: list[str] = Field(default_factory=list)
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    tls_ca_certificate: Path | None = None
    acse_timeout_s: float = Field(default=30.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    network_timeout_s: float = Field(default=60.0, gt=0)
    max_associations: int = Field(default=16, ge=1)
    max_instance_mb: float = Field(default=512.0, gt=0)
    # Intake guards (issue 22, D2/D3): a connection must finish its TLS handshake and send a
    # whole A-ASSOCIATE-RQ within handshake_timeout_s (no stall inside a PDU lasts longer before
    # that request); connections still waiting for it are
    # limited per source address and in all, and never count against max_associations.
    handshake_timeout_s: float = Field(default=10.0, gt=0)
    max_pending_per_address: int = Field(default=16, ge=1)
    max_pending_connections: int = Field(default=64, ge=1)
    #: Largest P-DATA PDU the SCP announces and accepts (PS3.8 9.3.1, D.1).
    max_pdu_bytes: int = Field(default=1_048_576, ge=4096, le=0xFFFFFFFF)
    quiet_period_s: float = Field(default=10.0, ge=0)
    routing_rules: Path | None = None
    stow_url: str | None = None
    stow_username: str | None = None
    stow_password: SecretStr | None = None
    dispatch_max_age_h: float = Field(default=24.0, gt=0)
    job_lease_s: float = Field(default=300.0, gt=0)
    # Scale-out (issue 27): "embedded" runs one analysis worker inside `serve` (SQLite is
    # enough); "celery" leaves analysis to `pancreas-node worker` processes fed through a
    # RabbitMQ broker (broker_url, an AMQP URL that may carry a password), with the database
    # (PostgreSQL) the record of truth. A killed worker's job restarts once its lease expires:
    # the distributed mode wants a short job_lease_s (docs/scale-out.md: 6 s).
    worker_mode: Literal["embedded", "celery"] = "embedded"
    broker_url: SecretStr | None = None
    celery_queue: str = Field(
        default="pancreas-analysis", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    # Prometheus metrics (issue 27, docs/metrics.md): GET /metrics on this port, by
    # convention 9464; None or 0: not served (the default, so that no process opens a second
    # port unasked: test nodes run side by side, and each Celery worker needs its own port).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_bind_address: str = "127.0.0.1"
    destinations: list[DicomDestination] = Field(default_factory=lambda: [DicomDestination()])
    database_url: str | None = None
    registry_config: Path | None = None
    bundle_path: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Test-time flips (issue 21): each bundle member also runs on the cube flipped along each
    # axis; the spread of the winning class's probability over the passes is the uncertainty
    # that a one-model bundle otherwise lacks (category and SEG stay the unflipped cube's). Off by
    # default: it runs the networks four times (about 4x the inference stage's CPU time).
    tta_flips: bool = False
    # Write each analysis' SEG and SR in a spawned helper process while the worker writes the
    # label map, the PDF and the detection SEG (issue 27): shorter analyses where a core is
    # free (GPU servers, one worker on a multi-core machine); the same CPU time, so off where
    # every core already runs a worker.
    parallel_writing: bool = False
    # PDAC detection gate (issue 23): a detection bundle runs first on every CT; below the
    # threshold (the site's operating point on the patient likelihood) no NCCN category is
    # given (outcome no-pdac). None: no detection.
    detection_bundle_path: Path | None = None
    detection_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Lymph-node model (issue 24): nodes with station, short axis, volume and probability of
    # metastasis, and the patient's N estimate (at the bundle's own patient threshold), after
    # the staging segmentation. None: no lymph-node assessment.
    lymph_node_bundle_path: Path | None = None
    # The survival model's bundle (issue 25): 1/2/3-year death probabilities and the risk
    # group from radiomics, a 3D-DenseNet and the clinical inputs, run last, for PDAC only.
    # None: no prognosis.
    survival_bundle_path: Path | None = None
    # Notifications (issue 26): channels, attempts per delivery, the back-off before the
    # first retry (doubling after each), how often the sender looks for work, and the base URL
    # a message links to (None: no link).
    notify_channels: list[NotificationChannel] = Field(default_factory=list)
    notify_max_attempts: int = Field(default=5, ge=1)
    notify_retry_s: float = Field(default=30.0, gt=0)
    notify_poll_s: float = Field(default=2.0, gt=0)
    notify_viewer_url: str | None = None
    orthanc_http_port: int = Field(default=8042, ge=1, le=65535)
    orthanc_dicom_port: int = Field(default=4242, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("ae_title")
    @classmethod
    def _ae_title_is_valid(cls, value: str) -> str:
        # PS3.5 6.2: AE is up to 16 characters of the default repertoire, no backslash.
        if "\\" in value or not value.strip() or not value.isascii():
            raise ValueError("AE title must be 1-16 ASCII characters without backslash")
        return value.strip()

    @field_validator("relay_ae_titles")
    @classmethod
    def _relay_ae_titles_are_valid(cls, values: list[str]) -> list[str]:
        titles = [clean_ae_title(v) for v in values]
        if any(t is None for t in titles):
            raise ValueError(
                "relay AE titles must be 1-16 printable ASCII characters, no backslash"
            )
        return [t for t in titles if t is not None]

    @field_validator("notify_channels")
    @classmethod
    def _channel_names_are_unique(
        cls, values: list[NotificationChannel]
    ) -> list[NotificationChannel]:
        names = [c.name for c in values]
        if len(set(names)) != len(names):
            raise ValueError("notification channel names must be unique")
        return values

    @model_validator(mode="after")
    def _celery_needs_a_broker(self) -> Self:
        if self.worker_mode == "celery" and self.broker_url is None:
            raise ValueError("worker_mode 'celery' needs broker_url (PANCREAS_AI_BROKER_URL)")
        return self

    @property
    def resolved_database_url(self) -> str:
        """Database URL, defaulting to SQLite under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'node.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        """``<data>/spool``: received instances by study and series UID."""
        return self.data_dir / "spool"

    @property
    def results_dir(self) -> Path:
        """``<data>/results``: one folder per job."""
        return self.data_dir / "results"

    @property
    def landmarks_dir(self) -> Path:
        """``<data>/cache/landmarks``: the contrast landmarks the node found, for the worker."""
        return self.data_dir / "cache" / "landmarks"

    @property
    def logs_dir(self) -> Path:
        """``<data>/logs``."""
        return self.data_dir / "logs"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from environment, an optional TOML file and explicit overrides.

    Precedence: explicit overrides > TOML file > environment > defaults.

    Raises
    ------
    ValueError
        If the TOML file cannot be read or holds invalid values.
    """
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values.update(tomllib.loads(config.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read settings file {config}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
