"""Real parts on loopback: the VDX-compatible service, the hub, SQLite files and a throwaway PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine, create_engine, select, text

from hub.api.app import create_app
from hub.api.server_thread import ServerThread
from hub.core import standards
from hub.core.config import Settings
from hub.core.routing import DELIVER_TOPIC
from hub.fhir.validator import Validator
from hub.medcom.schemas import OioxmlSchemas
from hub.store.db import make_engine
from hub.store.statements import OUTBOX
from hub.video.local import create_vdx_app
from tests.pgcluster import PgCluster
from tests.pki import make_pki
from tests.tokens import bearer

SHARED = Path(os.environ.get("HUB_STANDARDS_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "standards"))
FUT_EXAMPLES = SHARED / "fut" / "dk.ehealth.sundhed.fhir.ig.core" / "8.0.0" / "package" / "example"


def fut_example(name: str) -> dict[str, Any]:
    return json.loads((FUT_EXAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def fut_appointment(name: str = "Appointment-videoappointment01.json") -> dict[str, Any]:
    """A FUT Appointment example without its known defect (README, "Validation policy"): each carries a
    contained Location that nothing refers to, which breaks dom-3."""
    appt = fut_example(name)
    text = json.dumps(appt)
    appt["contained"] = [c for c in appt.get("contained", []) if f'"#{c["id"]}"' in text]
    if not appt["contained"]:
        del appt["contained"]
    return appt


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose standards store is synced once for the whole run."""
    root = tmp_path_factory.mktemp("hubdata")
    standards.sync(SHARED, root / "standards")
    return root


@pytest.fixture(scope="session")
def packages(data_root: Path) -> Any:
    from hub.fhir.packages import PackageSet

    return PackageSet(standards.package_dirs(data_root / "standards"))


@pytest.fixture(scope="session")
def validator(packages: Any) -> Validator:
    """One validator for the run: the profiles it compiles are the suite's slowest set-up."""
    return Validator(packages)


@pytest.fixture(scope="session")
def schemas(data_root: Path) -> OioxmlSchemas:
    """MedCom's OIOXML schema sets, compiled on first use."""
    return OioxmlSchemas(data_root / "standards")


VDX_CLIENT = ("hub", "vdx-test-secret")  # the client credentials the VDX stand-in asks for, as the real VDX does


class VdxToken(httpx.Auth):
    """A bearer token from the VDX stand-in's /token, fetched again when refused (its clock may have moved on)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token: str | None = None

    def _fetch(self) -> str:
        r = httpx.post(f"{self.url}/token", data={"grant_type": "client_credentials"}, auth=VDX_CLIENT, timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        self.token = self.token or self._fetch()
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self.token = self._fetch()
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


@pytest.fixture
def vdx() -> Iterator[ServerThread]:
    """The VDX-compatible service, asking for tokens; `vdx.client` calls it as a client with one."""
    with ServerThread(create_vdx_app(enable_test_clock=True, client_credentials=dict([VDX_CLIENT]))) as srv:
        srv.client = httpx.Client(base_url=srv.url, auth=VdxToken(srv.url), timeout=30)  # type: ignore[attr-defined]
        yield srv
        srv.client.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    cluster = PgCluster()
    if not cluster.available:
        pytest.skip("PostgreSQL (initdb/pg_ctl) is not installed: run scripts/ensure-postgresql.sh")
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


_db_counter = 0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.sqlite'}"
    global _db_counter
    _db_counter += 1
    server = request.getfixturevalue("pg_server")
    name = f"hub_test_{os.getpid()}_{_db_counter}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.rsplit("/", 1)[0] + "/" + name


def hub_settings(data_root: Path, tmp_path: Path, vdx_url: str, database_url: str | None = None,
                 **overrides: Any) -> Settings:
    """The settings of a test's hub; `overrides` go through the settings' validators as the environment's would
    (never `model_copy(update=…)`, which skips them)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "standards").symlink_to(data_root / "standards")
    return Settings(**{"data_dir": data, "vdx_url": vdx_url, "database_url": database_url, "vdx_retries": 1,
                       "vdx_token_url": f"{vdx_url}/token", "vdx_client_id": VDX_CLIENT[0],
                       "vdx_client_secret": VDX_CLIENT[1], **overrides})


@pytest.fixture
def hub(data_root: Path, tmp_path: Path, vdx: ServerThread) -> Iterator[Any]:
    """The hub on loopback (SQLite), talking HTTP to the VDX-compatible service."""
    settings = hub_settings(data_root, tmp_path, vdx.url)
    with ServerThread(create_app(settings)) as srv:
        srv.vdx = vdx  # type: ignore[attr-defined]
        srv.settings = settings  # type: ignore[attr-defined]
        srv.client = httpx.Client(base_url=srv.url, timeout=30,  # type: ignore[attr-defined]
                                  headers=bearer(srv.url, settings))
        yield srv
        srv.client.close()  # type: ignore[attr-defined]


# --- a receiving system, and the hub with a routing table to it ---------------------------------------------


def outbox_settled(engine: Engine, topic: str = DELIVER_TOPIC, timeout: float = 15.0) -> list[str]:
    """The statuses of the outbox's `topic` rows once none is waiting or being delivered: from then on what the
    receivers got is all they will get (every delivery is an outbox row)."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            statuses = list(conn.execute(select(OUTBOX.c.status).where(OUTBOX.c.topic == topic)
                                         .order_by(OUTBOX.c.id)).scalars())
        if not any(status in ("pending", "sending") for status in statuses):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"the outbox's {topic} rows did not settle: {statuses}")
        time.sleep(0.05)


class Receiver:
    """A receiving system on loopback: keeps what it is sent; answers `fail` statuses first, then 200."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.fail: list[int] = []
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/inbox")
        async def inbox(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.fail:
                    return Response(status_code=self.fail.pop(0))
                self.got.append(body)
            return Response(status_code=200)

        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return f"{self.server.url}/inbox"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= count:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.got)} messages, not {count}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


@pytest.fixture
def messaging_hub(data_root: Path, tmp_path: Path, vdx: ServerThread, receiver: Receiver) -> Iterator[Any]:
    def start(routes: list[dict[str, Any]], **overrides: Any) -> Any:
        """A hub routing to `routes` (each to the `receiver` unless it names its endpoint), with settings."""
        home = tmp_path / f"hub{len(servers)}"  # each hub its own data folder and database
        home.mkdir()
        table = home / "routes.json"
        table.write_text(json.dumps({"receivers": [{"endpoint": receiver.url, **r} for r in routes]}))
        settings = hub_settings(data_root, home, overrides.pop("vdx_url", vdx.url),
                                **{"routes": table, "outbox_interval_seconds": 0.05, **overrides})
        srv = ServerThread(create_app(settings)).start()
        servers.append(srv)
        srv.settings = settings  # type: ignore[attr-defined]
        srv.client = httpx.Client(base_url=srv.url, timeout=30,  # type: ignore[attr-defined]
                                  headers=bearer(srv.url, settings))
        srv.engine = make_engine(settings.effective_database_url)  # type: ignore[attr-defined]
        return srv

    servers: list[Any] = []
    yield start
    for srv in servers:
        srv.client.close()
        srv.stop()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """A CA and certificates signed by it (`tests.pki`): "ca", "server" (for 127.0.0.1), two senders'."""
    return make_pki(tmp_path)
