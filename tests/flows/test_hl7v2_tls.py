"""MLLP over TLS with client certificates the test makes: a certificate speaks only for the senders the table gives
it; without one there is no connection; plain MLLP leaves loopback only when allowed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from hub.core.config import Settings
from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2.mllp import MllpClient, MllpServer, tls_context
from hub.store.db import make_engine, migrate
from hub.wiring import preflight
from tests.flows.test_hl7v2 import adt, segments


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    migrate(engine)
    return engine


def _client_context(pki: dict[str, tuple[Path, Path]], who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"][0])
    if who:
        context.load_cert_chain(*pki[who])
    return context


def _stored(engine: Engine, status: str) -> int:
    with engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM messages WHERE direction='in' AND status=:s"),
                             {"s": status}).scalar_one())


def test_a_certificate_speaks_only_for_its_senders(engine: Engine, pki: dict[str, tuple[Path, Path]]) -> None:
    flow = Hl7v2Flow(engine, senders={"CN=epj.ouh.example": frozenset({"EPJ^OUH"})})
    listener = tls_context(*pki["server"], pki["ca"][0])
    with MllpServer(flow.handle, tls=listener).start_in_thread() as server:
        with MllpClient("127.0.0.1", server.port, tls=_client_context(pki, "epj.ouh.example")) as epj:
            assert segments(epj.send(adt(control_id="T1").encode("iso-8859-1")))["MSA"][1] == "AA"
            forged = segments(epj.send(adt(control_id="T2").replace("|EPJ|OUH|", "|LAB|RH|").encode("iso-8859-1")))
            assert forged["MSA"][1:3] == ["AR", "T2"] and "may not send" in "|".join(forged["ERR"])
        with MllpClient("127.0.0.1", server.port, tls=_client_context(pki, "lab.rh.example")) as lab:
            other = segments(lab.send(adt(control_id="T1").encode("iso-8859-1")))  # EPJ^OUH's id, not the lab's
            assert other["MSA"][1] == "AR"
        with (pytest.raises((ssl.SSLError, ConnectionError, OSError)),  # no certificate: no connection
              MllpClient("127.0.0.1", server.port, tls=_client_context(pki, None)) as anonymous):
            anonymous.send(adt(control_id="T3").encode("iso-8859-1"))
        with (pytest.raises((ConnectionError, OSError)),  # plain MLLP to a TLS listener: no answer
              MllpClient("127.0.0.1", server.port, timeout=5) as plain):
            plain.send(adt(control_id="T4").encode("iso-8859-1"))
    assert _stored(engine, "accepted") == 1 and _stored(engine, "rejected") == 2  # the refused kept too


def test_tls_without_client_certificates_checks_no_senders(engine: Engine,
                                                            pki: dict[str, tuple[Path, Path]]) -> None:
    with (MllpServer(Hl7v2Flow(engine).handle, tls=tls_context(*pki["server"])).start_in_thread() as server,
          MllpClient("127.0.0.1", server.port, tls=_client_context(pki, None)) as client):
        assert segments(client.send(adt(control_id="P1").encode("iso-8859-1")))["MSA"][1] == "AA"


def test_plain_mllp_leaves_loopback_only_when_allowed(tmp_path: Path, pki: dict[str, tuple[Path, Path]]) -> None:
    plain = Settings(data_dir=tmp_path, _env_file=None)
    assert any("without TLS" in p for p in preflight(plain, "0.0.0.0"))
    assert not any("without TLS" in p for p in preflight(plain, "127.0.0.1"))
    assert not any("without TLS" in p for p in preflight(Settings(data_dir=tmp_path, mllp_allow_plain=True),
                                                          "0.0.0.0"))
    cert, key = pki["server"]
    with_ca = Settings(data_dir=tmp_path, mllp_tls_cert=cert, mllp_tls_key=key, mllp_tls_ca=pki["ca"][0])
    assert any("HUB_MLLP_TLS_SENDERS is required" in p for p in preflight(with_ca, "0.0.0.0"))
    assert any("go together" in p for p in preflight(Settings(data_dir=tmp_path, mllp_tls_cert=cert), "::"))
