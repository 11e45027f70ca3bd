"""Configuration from `HUB_*` environment variables (pydantic-settings).

One settings object is built per process and handed to the parts that need it, so tests can build their own
with other values instead of patching globals.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.core import jsonsetting
from hub.core.guard import Circuit
from hub.core.routing import RoutingTable

Address = tuple[str, int]  # host, port
Application = tuple[str, str]  # HL7 v2 application^facility (MSH-3^4, MSH-5^6)


def _default_standards_dir() -> Path:
    return Path("..") / "shared" / "standards"


class Settings(BaseSettings):
    """Everything the hub reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the hub keeps its database and standards store")
    standards_dir: Path = Field(default_factory=_default_standards_dir, description="Official standards source")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite file in data_dir when unset")
    public_base_url: str | None = Field(None, description="Base URL used in Location headers and links")

    vdx_url: str | None = Field(None, description="VDX Booking API base URL; the built-in service when unset")
    vdx_token_url: str | None = Field(None, description="OAuth2 token endpoint for the real VDX")
    vdx_client_id: str | None = None
    vdx_client_secret: str | None = None
    vdx_timeout_seconds: float = 10.0
    vdx_retries: int = 3
    vdx_concurrency: int = Field(8, ge=1, description="Calls out to VDX at once from one process; bookings beyond "
                                 "them (and a queue of as many again) are answered 503 at once")
    vdx_organizer_email: str | None = Field(None, description="organizedByEmail sent with every booking")

    store_writer: str | None = Field(None, description="Socket of the store's writer process (set by hub serve)")
    store_writer_key: str | None = Field(None, description="Its authentication key, hex (set by hub serve)")
    pending_settle_after_seconds: float = Field(300, description="Age at which a booking left pending is settled")
    housekeeping_interval_seconds: float = Field(60, description="How often housekeeping (settling) runs")
    xdis13_video_pattern: str = Field("(?i)video", description="A regular expression: a booking confirmation "
                                      "(XDIS13) whose text matches it is a video consultation, booked in VDX")
    xdis13_minutes: int = Field(30, description="How long a meeting booked by an XDIS13 lasts (it has no end)")
    hl7v2_receiver: Annotated[Address | None, NoDecode] = Field(
        None, description="host:port of an HL7 v2 system that gets the meetings booked through FHIR as SIU over "
        "MLLP (through the outbox)")
    hl7v2_receiver_application: Annotated[Application, NoDecode] = Field(
        ("EPJ", "EPJ"), description="Its MSH-5^MSH-6 (application^facility)")
    hl7v2_sending_application: Annotated[Application, NoDecode] = Field(
        ("HUB", "HUB"), description="The hub's MSH-3^MSH-4 in what it sends")
    hl7v2_ack_addresses: Annotated[dict[str, Address], NoDecode] = Field(
        default_factory=dict, description="Where enhanced mode's application acknowledgements go: "
        "APP^FACILITY=host:port;… by the sender's MSH-3^MSH-4")
    hl7v2_video_codes: Annotated[frozenset[str], NoDecode] = Field(
        frozenset({"VIDEO"}), description="Codes (comma-separated) that mark an HL7 v2 SIU as a video "
        "consultation, in SCH-7, SCH-8 or AIS-3")
    mllp_max_connections: int = Field(256, ge=1, description="Connections the MLLP listener holds at once; beyond "
                                      "them the one waiting longest for bytes is closed to make room")
    https_cert: Path | None = Field(None, description="Serve the API over HTTPS with this certificate (PEM), for "
                                    "those without a TLS proxy in front")
    https_key: Path | None = Field(None, description="Its private key (PEM)")
    mllp_tls_cert: Path | None = Field(None, description="The MLLP listener's TLS certificate (PEM); with "
                                       "HUB_MLLP_TLS_KEY, MLLP inside TLS")
    mllp_tls_key: Path | None = Field(None, description="Its private key (PEM)")
    mllp_tls_ca: Path | None = Field(None, description="The CA whose client certificates are required (PEM); with "
                                     "it, HUB_MLLP_TLS_SENDERS says whom each may send as")
    mllp_tls_senders: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict, description="Client certificate (`sha256:<fingerprint>` or `CN=<name>`) → the "
        "senders (MSH-3^MSH-4) it may send as (JSON, inline or a file's path)")
    mllp_allow_plain: bool = Field(False, description="Plain MLLP (no TLS) on an address other than loopback")
    mllp_frame_seconds: float = Field(30.0, gt=0, description="How long an MLLP block may take from its start to "
                                      "its end before what came is answered (AR) and the connection closed")
    pending_letter_hours: float = Field(24, description="How long an OIOXML letter for a FHIR receiver waits for "
                                        "the rest of its message (XDIS91 ⇄ XBIN01) before it is refused")
    worker_threads: int = Field(8, description="Threads running request work (database, VDX calls)")
    max_body_bytes: int = Field(1_000_000, description="Largest request body accepted")
    routes: str | Path | None = Field(None, description="Routing table of MedCom receivers (hub/core/routing.py): "
                                      "a JSON file's path, or the JSON itself")
    outbox_interval_seconds: float = Field(1.0, description="How often the outbox worker looks for deliveries")
    outbox_max_attempts: int = Field(10, description="Attempts before a delivery goes to dead-letter")
    outbox_first_delay_seconds: float = Field(2.0, description="The wait before a failed delivery's second try; "
                                              "it doubles with each try after")
    outbox_max_delay_seconds: float = Field(600.0, description="The longest wait between tries")
    circuit_failures: int = Field(5, ge=1, description="Failed calls in a row to a downstream (VDX, the case "
                                  "index, an outbox receiver) that open its circuit")
    circuit_reset_seconds: float = Field(30.0, gt=0, description="How long an open circuit refuses calls before "
                                         "one trial call")
    outbox_concurrency: int = Field(4, ge=1, description="Deliveries to one receiver at once (each receiver has "
                                    "its own threads and circuit)")
    log_level: str = "INFO"
    restart_pause_seconds: float = Field(1.0, gt=0, description="`hub serve`: the first pause before a part that "
                                         "died is started again (doubling with each death, up to a minute)")

    # The case index (SF1470 v6, hub/sdi; README "The case index")
    sdi_enabled: bool = Field(True, description="Keep the citizens' cases in the case index")
    sdi_url: str | None = Field(None, description="SF1470 v6 endpoint; the hub's local case index when unset")
    sdi_local: bool = Field(False, description="HUB_SDI_URL is the hub's local index (set by hub serve)")
    sdi_security: Literal["oioidws", "none"] = Field("oioidws", description="OIOIDWS, or unsigned calls")
    sdi_sts_url: str | None = Field(None, description="The STS issuing the OIOIDWS token (WS-Trust 1.3 Issue)")
    sdi_audience: str = Field("http://stoettesystemerne.dk/service/sagdokumentindeks/6",
                              description="The case index's entityID, asked of the STS as AppliesTo")
    sdi_certificate: Path | None = Field(None, description="The hub's function certificate (PEM, or .p12/.pfx)")
    sdi_key: Path | None = Field(None, description="Its private key (PEM)")
    sdi_key_password: str | None = None
    sdi_sts_certificate: Path | None = Field(None, description="The STS's signing certificate (PEM)")
    sdi_service_certificate: Path | None = Field(None, description="The case index's signing certificate (PEM)")
    sdi_liberty: bool = Field(True, description="Send the Liberty basic SOAP binding Framework header")
    sdi_timeout_seconds: float = 10.0
    sdi_cvr: str = Field("11111111", description="The municipality's CVR number (the STS claim and the Ejer)")
    sdi_municipality: str = Field("Kommunen", description="The municipality's name")
    sdi_organisation: str | None = Field(None, description="Its UUID in FK Organisation (else named by CVR)")
    sdi_unit: str = Field("00000000-0000-4000-8000-000000000001", description="The responsible unit's UUID")
    sdi_unit_name: str = Field("Sundhed og Omsorg", description="The responsible unit's name")
    sdi_units: Annotated[dict[str, tuple[str, str]], NoDecode] = Field(
        default_factory=dict, description="A FHIR Organization reference → [unit UUID, name] (JSON, inline or a "
        "file's path)")
    sdi_itsystem: str = Field("00000000-0000-4000-8000-00000000f001", description="The hub's it-system UUID in "
                              "Fælleskommunalt Administrationsmodul (Master and Afsender)")
    sdi_system_name: str = Field("Interop Adapter Hub", description="Its name (SystemNavn)")
    sdi_classes: str | Path | None = Field(None, description="The municipality's FK Klassifikation UUIDs (JSON, inline "
                                    "or a file's path: roles, types, kle, handlingsfacet, visningsklasse); required "
                                    "with HUB_SDI_URL")
    sdi_legal_basis: str | None = Field(None, description="The service (a urn:hub:legal-basis code) of a meeting "
                                        "that does not name one")
    sdi_minimum_age: int = Field(18, description="From which age a citizen sees their cases in Borgerblikket")
    sdi_age_overrides: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, description="KLE prefix → age (JSON, inline or a file's path)")
    sdi_show_history_before_age: bool = Field(False, description="Whether cases from before that age are shown")
    sdi_openings: Annotated[dict[str, dict[str, date]], NoDecode] = Field(
        default_factory=dict, description="CVR → KLE prefix → the date from which Borgerblikket shows its cases "
        "(JSON, inline or a file's path)")

    # Tokens (hub.auth; README "Security")
    auth_own_issuer: bool = Field(True, description="Issue tokens to the clients of `hub clients add` at "
                                  "/auth/token (and accept them)")
    auth_issuers: Annotated[list[dict[str, str]], NoDecode] = Field(
        default_factory=list, description="Other issuers whose tokens are accepted (JSON, inline or a file's path): "
        "[{issuer, jwks_uri, audience?, organisation_claim?}]")

    _routing: tuple[str | Path | None, RoutingTable] | None = PrivateAttr(None)

    @field_validator("sdi_units", "sdi_age_overrides", "sdi_openings", "auth_issuers", "mllp_tls_senders",
                     mode="before")
    @classmethod
    def _json(cls, value: Any, info: ValidationInfo) -> Any:
        """Inline JSON or a file's path (hub.core.jsonsetting); empty is none."""
        if isinstance(value, str):
            empty: Any = [] if info.field_name == "auth_issuers" else {}
            return jsonsetting.read(value) if value.strip() else empty
        return value

    @field_validator("hl7v2_receiver", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        if isinstance(value, str):  # empty: no receiver
            return _address(value, f"HUB_HL7V2_RECEIVER: {value!r} is not host:port") if value.strip() else None
        return value

    @field_validator("hl7v2_receiver_application", "hl7v2_sending_application", mode="before")
    @classmethod
    def _application(cls, value: Any) -> Any:
        """`APP^FACILITY`; a facility left out is empty."""
        return tuple((value.split("^", 1) + [""])[:2]) if isinstance(value, str) else value

    @field_validator("hl7v2_ack_addresses", mode="before")
    @classmethod
    def _ack_addresses(cls, value: Any) -> Any:
        """`APP^FACILITY=host:port;…` as {sender: (host, port)}."""
        if value is None:
            return {}
        if not isinstance(value, str):
            return value
        found: dict[str, Address] = {}
        for part in value.split(";"):
            if part.strip():
                sender, _, address = part.strip().partition("=")
                what = f"HUB_HL7V2_ACK_ADDRESSES: {part!r} is not APP^FACILITY=host:port"
                if not sender:
                    raise ValueError(what)
                found[sender] = _address(address, what)
        return found

    @field_validator("hl7v2_video_codes", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return frozenset(c.strip() for c in value.split(",") if c.strip()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _load_routing(self) -> Settings:
        """The routing table is read with the settings: a broken file stops the hub at start."""
        self._routing = (self.routes, RoutingTable.load(self.routes))
        return self

    @property
    def routing(self) -> RoutingTable:
        """The MedCom receivers of `HUB_ROUTES` (empty without it); read again if `routes` was changed since
        (`model_copy(update=…)` skips the validators)."""
        if self._routing is None or self._routing[0] != self.routes:
            self._routing = (self.routes, RoutingTable.load(self.routes))
        return self._routing[1]

    @property
    def circuit(self) -> Circuit:
        """When each downstream's circuit opens and for how long (hub.core.guard)."""
        return Circuit(self.circuit_failures, self.circuit_reset_seconds)

    @property
    def standards_store(self) -> Path:
        """The hub's own copy of the official standards, filled by `hub schemas sync`."""
        return self.data_dir / "standards"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hub.sqlite').resolve()}"


def _address(value: str, what: str) -> Address:
    host, _, port = value.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(what)
    return host, int(port)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
