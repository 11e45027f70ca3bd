"""The `hub` command: run the hub and its built-in services, manage the standards store."""

from __future__ import annotations

import gc
import os
import secrets
import signal
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hub.core.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hub.convert.service import Output

app = typer.Typer(help="Interoperability hub for Danish healthcare and social-care messaging.", no_args_is_help=True)
schemas_app = typer.Typer(help="The store of official standards.", no_args_is_help=True)
vdx_app = typer.Typer(help="The built-in VDX-compatible video booking service.", no_args_is_help=True)
sdi_app = typer.Typer(help="The local case index (KOMBIT SF1470 v6).", no_args_is_help=True)
outbox_app = typer.Typer(help="Deliveries waiting, made and failed (the outbox).", no_args_is_help=True)
clients_app = typer.Typer(help="The clients of the hub's own token issuer (OAuth2 client credentials).",
                          no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(vdx_app, name="vdx")
app.add_typer(sdi_app, name="sdi")
app.add_typer(outbox_app, name="outbox")
app.add_typer(clients_app, name="clients")


def _settings() -> Settings:
    """The settings, or exit 2 saying which setting is wrong (a routing table that cannot be read, an address that
    is not host:port) instead of a traceback."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            text = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"error: {'HUB_' + where.upper() + ': ' if where else ''}{text}", err=True)
        raise typer.Exit(2) from None


@schemas_app.command("sync")
def schemas_sync(
    source: Annotated[Path | None, typer.Option(help="Standards directory (default $HUB_STANDARDS_DIR)")] = None,
    fetch: Annotated[bool, typer.Option(help="Download files missing from the source from their origin")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="A line for each standard synced")] = False,
) -> None:
    """Copy the official packages and schemas into the hub's store, checking their checksums."""
    from hub.core import standards

    settings = _settings()
    fetcher = _fetch if fetch else None
    try:
        synced = standards.sync(source or settings.standards_dir, settings.standards_store, fetch=fetcher,
                                report=typer.echo if verbose else lambda _line: None)
    except standards.SyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(synced)} standards in {settings.standards_store}")


def _fetch(std: object, dest: Path) -> None:
    import httpx

    origin = str(getattr(std, "origin", ""))
    if not origin.startswith("https://"):
        raise typer.BadParameter(f"{getattr(std, 'id', '?')} has no downloadable origin: {origin}")
    with httpx.stream("GET", origin, follow_redirects=True, timeout=60) as r:
        r.raise_for_status()
        with dest.open("wb") as f:
            for chunk in r.iter_bytes():
                f.write(chunk)


class Target(StrEnum):
    fhir = "fhir"
    oioxml = "oioxml"


@app.command()
def convert(
    paths: Annotated[list[Path], typer.Argument(help="The message files: OIOXML Emessages (an XDIS91 with the "
                                                "XBIN01s of its attachments) or a FHIR CareCommunication; or an "
                                                "answer with the message it answers: a FHIR Acknowledgement with "
                                                "the OIOXML letters, XCTL receipts with the CareCommunication; or "
                                                "HL7 v2 messages (SIU, ADT)", exists=True, dir_okay=False)],
    to: Annotated[Target, typer.Option(help="What to convert to")],
    out: Annotated[Path | None, typer.Option(help="Write one file per message produced here, and print their "
                                             "names; without it the single result goes to stdout")] = None,
) -> None:
    """Convert messages: MedCom's as MedCom's conversion service does (XDIS91/XBIN01 ⇄ CareCommunication, XCTL ⇄
    Acknowledgement); HL7 v2 SIU and ADT to the FHIR the hub acts on."""
    from hub.conformance.files import detect
    from hub.convert.to_fhir import ConversionError
    from hub.core.errors import HubError
    from hub.fhir.messaging import NotAMessage
    from hub.hl7v2.message import NotHl7
    from hub.hl7v2.to_fhir import NotConvertible

    bodies = [p.read_bytes() for p in paths]
    notes: list[str] = []
    try:
        if any(detect(b) == "hl7v2" for b in bodies):
            outputs = _hl7v2_to_fhir(bodies, to)
        else:
            outputs, notes = _medcom(bodies, to)
    except (ConversionError, HubError, NotAMessage, NotHl7, NotConvertible, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if out is None:
        if len(outputs) != 1:
            typer.echo(f"error: the conversion gives {len(outputs)} messages; name a folder with --out", err=True)
            raise typer.Exit(1)
        sys.stdout.buffer.write(outputs[0].body)
        return
    out.mkdir(parents=True, exist_ok=True)
    for output in outputs:
        (out / output.name).write_bytes(output.body)
        typer.echo(str(out / output.name))


def _hl7v2_to_fhir(bodies: list[bytes], to: Target) -> list[Output]:
    import json

    from hub.conformance.files import detect
    from hub.fhir.packages import load_store
    from hub.fhir.structure import StructureValidator
    from hub.hl7v2.adt import registry
    from hub.hl7v2.ig_mapping import IgMapping
    from hub.hl7v2.ig_tables import IgTables
    from hub.hl7v2.message import read
    from hub.hl7v2.to_fhir import to_bundle

    if to is not Target.fhir or any(detect(b) != "hl7v2" for b in bodies):
        raise ValueError("HL7 v2 messages convert --to fhir, and not together with other formats")
    from hub.convert.service import Output

    store = _settings().standards_store
    mapping = IgMapping(IgTables.in_store(store), registry, StructureValidator(load_store(store)).with_arrays)
    outputs = []
    for body in bodies:
        message = read(body)
        bundle = to_bundle(message, mapping)
        kind = bundle["entry"][0]["resource"]["resourceType"]
        outputs.append(Output(f"{kind}-{message.control_id or bundle['id']}.json", "application/fhir+json",
                              json.dumps(bundle, ensure_ascii=False, indent=2).encode()))
    return outputs


def _medcom(bodies: list[bytes], to: Target) -> tuple[list[Output], list[str]]:
    import uuid

    from lxml import etree

    from hub.conformance.files import detect
    from hub.convert.receipts import KINDS
    from hub.convert.to_fhir import ConversionError
    from hub.fhir.io import parse, parse_xml_root
    from hub.fhir.messaging import ErrorCodes, ack_event, read_message
    from hub.fhir.structure import StructureValidator
    from hub.fhir.xml_reader import XmlReader
    from hub.medcom.schemas import OioxmlSchemas
    from hub.wiring import converter_factory, load_packages

    settings = _settings()
    packages = load_packages(settings)
    converter = converter_factory(settings, packages, OioxmlSchemas(settings.standards_store))()
    reader = XmlReader(StructureValidator(packages))  # FHIR XML read as the validator reads it
    roots = [parse_xml_root(b) for b in bodies if detect(b) == "oioxml"]
    fhir = [parse(b, f"application/{detect(b)}", reader) for b in bodies if detect(b) in ("fhir+json", "fhir+xml")]
    if len(roots) + len(fhir) != len(bodies):
        raise ConversionError("give OIOXML Emessages and FHIR messages only")
    answers = [b for b in fhir if read_message(b).event_code == "acknowledgement-message"]
    receipts = [r for r in roots if any(etree.QName(c).localname in KINDS for c in r if isinstance(c.tag, str))]
    if to is Target.fhir and receipts:
        if len(fhir) != 1 or len(receipts) != len(roots):
            raise ConversionError("--to fhir converts receipts with the one CareCommunication they answer")
        return converter.acknowledgements(roots, fhir[0], ErrorCodes.load(), ack_event(packages),
                                          lambda: str(uuid.uuid4()))
    if to is Target.fhir:
        if fhir:
            raise ConversionError("--to fhir converts OIOXML Emessages only")
        return [o for c in converter.to_fhir(roots) for o in c.outputs], []
    if answers:
        if len(fhir) != 1 or not roots:
            raise ConversionError("--to oioxml converts an Acknowledgement with the OIOXML letters it answers")
        return converter.receipts(answers[0], roots)
    if len(fhir) != 1 or roots:
        raise ConversionError("--to oioxml converts one FHIR CareCommunication message")
    return converter.to_oioxml(fhir[0]).outputs, []


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    junit = "junit"
    html = "html"


class FailOn(StrEnum):
    error = "error"
    warning = "warning"


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to validate", exists=True)],
    profile: Annotated[list[str] | None, typer.Option(help="Validate against this profile too (repeatable)")] = None,
    format: Annotated[ReportFormat, typer.Option(help="Report format")] = ReportFormat.text,
    fail_on: Annotated[FailOn, typer.Option(help="Lowest severity that fails a file")] = FailOn.error,
    package: Annotated[str | None, typer.Option(help="Resolve canonicals as this loaded package (name#version) "
                                                "sees them; default: the package a file sits in, else newest")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the report to this file instead of stdout")] = None,
    security_checks: Annotated[bool, typer.Option(help="HTML tags in strings are errors")] = False,
    example_urls: Annotated[bool, typer.Option(help="Allow URLs of example domains (example.org, …)")] = True,
    resolve_references: Annotated[bool, typer.Option(help="Every relative reference must resolve in the input")
                                  ] = False,
    bundle_profile: Annotated[list[str] | None, typer.Option(
        help="TYPE:INDEX=PROFILE (or TYPE:*=PROFILE): validate those Bundle entries against PROFILE too")] = None,
    display_issues_are_warnings: Annotated[bool, typer.Option(
        "--display-issues-are-warnings", help="A display the code system does not give is a warning")] = False,
    jobs: Annotated[int | None, typer.Option(min=1, help="Worker processes: files shared out among them, a large "
                                             "Bundle validated in parts; default: the cores available")] = None,
) -> None:
    """Validate messages against the official packages; exit 0 when all pass, 1 when any fails."""
    from rich.progress import Progress

    from hub.conformance import files, parallel, parse_cache, report
    from hub.fhir.options import ValidationOptions
    from hub.fhir.packages import load_store
    from hub.fhir.validator import Validator
    from hub.medcom.schemas import OioxmlSchemas

    settings = _settings()
    packages = load_store(settings.standards_store)
    trees = settings.data_dir / "cache" / "fhirpath-trees.json"
    parse_cache.load(trees)
    loaded = {f"{name}#{version}" for name, version in packages.packages}
    if package is not None and package not in loaded:
        raise typer.BadParameter(f"{package} is not a loaded package", param_hint="--package")
    rules = [tuple(b.split("=", 1)) for b in bundle_profile or ()]
    if any(len(r) != 2 or ":" not in r[0] for r in rules):
        raise typer.BadParameter("expected TYPE:INDEX=PROFILE", param_hint="--bundle-profile")
    options = ValidationOptions(security_checks=security_checks, example_urls=example_urls,
                                resolve_references=resolve_references,
                                bundle_profiles=tuple((r[0], r[1]) for r in rules),
                                display_warnings=display_issues_are_warnings)
    validator = Validator(packages, options=options)
    # The packages and compiled profiles live as long as the command: collections need not look at them
    # again, and fewer collections suit a short command that allocates much (a 10,000-entry Bundle).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    oioxml = OioxmlSchemas(settings.standards_store)
    todo = list(files.collect(paths))
    results = []
    # A progress bar on a terminal, for long runs; nothing on a pipe, where the report is the output.
    with Progress(transient=True, disable=not sys.stderr.isatty() or len(todo) < 20,
                  console=None) as bar:
        task = bar.add_task("validating", total=len(todo))
        workers = jobs or parallel.cores()

        def one(path: Path, parts: int = 1) -> files.FileResult:
            context = package or files.package_context(path, loaded)
            return files.validate_file(validator, path, tuple(profile or ()), context, oioxml, parts)

        # Many files: shared out among the workers; a few: one at a time, a large Bundle in parts.
        many = workers > 1 and len(todo) >= 2 * workers
        for result in parallel.shared_out(one, todo, workers) if many else (one(p, workers) for p in todo):
            results.append(result)
            bar.advance(task)
    parse_cache.save(trees)
    written = report.FORMATS[format.value](results, fail_on.value)
    if output is None:
        typer.echo(written)
    else:
        output.write_text(written + "\n", encoding="utf-8")
        failed = sum(not r.valid(fail_on.value) for r in results)
        typer.echo(f"{len(results)} files, {len(results) - failed} passed, {failed} failed: {output}", err=True)
    _leave(0 if all(r.valid(fail_on.value) for r in results) else 1)


def _leave(code: int) -> None:
    """End the command with `code`. As a process of its own (its output not captured by a caller in the same
    process), it ends at once, as mypy does, without tearing down its heap of packages, compiled profiles and
    input: a fifth of a 10,000-entry Bundle's run went to freeing memory the system frees anyway. Nothing is
    left to run by then: the output is written, the worker pool shut, the parse cache saved."""
    if sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__:
        typer.echo(nl=False)  # flushes stdout
        typer.echo(nl=False, err=True)
        os._exit(code)
    if code:
        raise typer.Exit(code)


@app.command()
def testscript(
    script: Annotated[str, typer.Argument(help="A TestScript id from the standards store (e.g. "
                                          "carecommunication-send-new-message, hospitalnotification-send-stin), "
                                          "or a TestScript file")],
    messages: Annotated[list[Path], typer.Argument(help="The messages the system sent (FHIR JSON or XML), in the "
                                                   "order the script sends them", exists=True, dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Write the TestReport to this file instead of stdout")] = None,
) -> None:
    """Run a MedCom TestScript on the messages a system sends; print the TestReport; exit 0 when it passes."""
    import orjson

    from hub.conformance import testscript as scripts
    from hub.core import standards
    from hub.core.errors import HubError
    from hub.fhir.packages import load_store
    from hub.fhir.validator import Validator

    settings = _settings()
    try:
        found = scripts.load(script, settings.standards_store)
        validator = Validator(load_store(settings.standards_store))
        sent = []
        for path in messages:
            try:
                sent.append(validator.parse(path.read_bytes(), None))  # FHIR XML by the validator's own reader
            except HubError as exc:
                raise typer.BadParameter(f"{path} is not a FHIR resource: {exc}", param_hint="MESSAGES") from None
        scripts.bind(found, sent)
    except (scripts.ScriptNotFound, standards.SyncError) as exc:
        raise typer.BadParameter(str(exc), param_hint="SCRIPT") from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="MESSAGES") from None
    report = scripts.run(found, sent, validator)
    body = orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
    if out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        out.write_bytes(body)
    typer.echo(scripts.summary(report), err=True)
    if report["result"] != "pass":
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes for the API")] = 1,
    mllp_port: Annotated[int, typer.Option(help="Port of the HL7 v2 MLLP listener; 0 turns it off")] = 2575,
    mllp_tls_cert: Annotated[Path | None, typer.Option(help="MLLP inside TLS: its certificate (HUB_MLLP_TLS_CERT)")]
    = None,
    mllp_tls_key: Annotated[Path | None, typer.Option(help="Its key (HUB_MLLP_TLS_KEY)")] = None,
    mllp_tls_ca: Annotated[Path | None, typer.Option(help="Client certificates required, signed by this CA "
                                                          "(HUB_MLLP_TLS_CA)")] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="HTTPS: the API's certificate (HUB_HTTPS_CERT)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="Its key (HUB_HTTPS_KEY)")] = None,
) -> None:
    """Run the hub. Without HUB_VDX_URL the built-in VDX-compatible service is started on loopback too; the
    MLLP listener for HL7 v2 runs beside the API (its own process)."""
    from hub.api import serving
    from hub.api.health import MLLP_VAR
    from hub.api.server_thread import free_port
    from hub.core.logging import configure
    from hub.core.metrics import use_folder
    from hub.store.writer import WriterProcess
    from hub.supervisor import Part, Spawned, Supervisor
    from hub.wiring import preflight

    given = {"HUB_MLLP_TLS_CERT": mllp_tls_cert, "HUB_MLLP_TLS_KEY": mllp_tls_key, "HUB_MLLP_TLS_CA": mllp_tls_ca,
             "HUB_HTTPS_CERT": ssl_certfile, "HUB_HTTPS_KEY": ssl_keyfile}
    os.environ.update({name: str(path.resolve()) for name, path in given.items() if path is not None})  # the parts'
    settings = _settings()
    configure(settings.log_level)
    problems = preflight(settings, host if mllp_port else None)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    taken = _taken(host, [port, mllp_port] if mllp_port else [port])
    if taken is not None:  # before any part starts: never a hub that runs without one
        typer.echo(taken, err=True)
        raise typer.Exit(1)
    engine = _database(settings)  # migrated once, before any worker starts
    engine.dispose()
    use_folder(settings.data_dir / "metrics")  # every part's metrics, added up by `/metrics` (hub.core.metrics)
    # SIGTERM (how systemd, Docker and Kubernetes stop a service) as SIGINT: uvicorn shuts the API down gracefully
    # on either and then raises the signal again under the handler it found; this one makes that an exception, so
    # the children below are stopped and the command ends 0, not killed with them left running.
    signal.signal(signal.SIGTERM, _interrupted)
    supervisor = Supervisor(first_pause=settings.restart_pause_seconds)
    writer = None
    failed = False
    try:  # each part started inside it, so that whatever started is stopped however the command ends
        if not settings.vdx_url:
            vdx_port = free_port()
            # It asks for a token as the real VDX does: the hub's client gets one with these credentials, made
            # for this run (read by the service and by the hub's parts from the environment).
            os.environ.update({"HUB_VDX_URL": f"http://127.0.0.1:{vdx_port}",
                               "HUB_VDX_TOKEN_URL": f"http://127.0.0.1:{vdx_port}/token",
                               "HUB_VDX_CLIENT_ID": "hub", "HUB_VDX_CLIENT_SECRET": secrets.token_urlsafe(24)})
            vdx = ["vdx", "serve"]
            supervisor.add(Part("the built-in VDX-compatible service", lambda: _service(vdx, vdx_port)),
                           _start_service(vdx, vdx_port, "built-in VDX-compatible service"))
        if settings.sdi_enabled and not settings.sdi_url:
            sdi_port, sdi_proc = _start_local_index(settings)
            supervisor.add(Part("the local case index", lambda: _service(["sdi", "serve"], sdi_port)), sdi_proc)
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            # SQLite admits one writer: the hot path's writes go through one process of their own.
            writer = WriterProcess(settings.effective_database_url, settings.log_level)
            spawn = writer.spawn
            supervisor.add(Part("the store writer", lambda: Spawned(spawn())), Spawned(spawn()))
            os.environ.update(writer.environment)
        if mllp_port:
            listener = [sys.executable, "-m", "hub", "mllp", "--host", host, "--port", str(mllp_port)]
            supervisor.add(Part("the MLLP listener", lambda: subprocess.Popen(listener), grace=40),
                           subprocess.Popen(listener))  # it answers the messages in hand before it stops
            os.environ[MLLP_VAR] = f"{host}:{mllp_port}"  # for the workers' readiness (`hub.api.health`)
        supervisor.start()
        if settings.auth_own_issuer:
            typer.echo(f"tokens: `hub clients add NAME --organisation SYSTEM|VALUE --scope SCOPES`, then POST "
                       f"http://{host}:{port}/auth/token (client credentials)", err=True)
        serving.serve(host, port, workers, settings.log_level, settings.restart_pause_seconds)
    except KeyboardInterrupt:
        pass  # stopped: SIGINT, or SIGTERM by `_interrupted`
    except serving.NotStarted as exc:
        typer.echo(f"error: {exc} (the log above says why)", err=True)
        failed = True
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the stopping of the children short
        supervisor.stop()
        if writer is not None:
            writer.stop()
    if failed:
        raise typer.Exit(1)


def _database(settings: Settings) -> Engine:
    """The database, migrated; or exit 2 saying in one line why it cannot be used (its password not shown)."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from hub.store.db import make_engine, migrate

    try:
        engine = make_engine(settings.effective_database_url)
        migrate(engine)
    except (ArgumentError, SQLAlchemyError, OSError) as exc:
        from sqlalchemy.engine import make_url

        try:
            where = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        except ArgumentError:
            where = "(not a database URL)"
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        typer.echo(f"error: HUB_DATABASE_URL {where} cannot be used: {why}", err=True)
        raise typer.Exit(2) from None
    return engine


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _taken(host: str, ports: list[int]) -> str | None:
    """A one-line error for the first of `ports` on `host` that cannot be listened on (another process has it);
    None when all are free."""
    import socket

    for port in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                return f"error: cannot listen on {host}:{port} ({exc.strerror}): is another hub running there?"
    return None


def _start_local_index(settings: Settings) -> tuple[int, subprocess.Popen[bytes]]:
    """The local case index and its STS on a free loopback port, and the hub's settings to call it (OIOIDWS
    unless HUB_SDI_SECURITY=none)."""
    from hub.api.server_thread import free_port
    from hub.sdi.local.app import LocalCredentials

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if settings.sdi_security == "oioidws":  # made here, before the index reads them
        os.environ.update(LocalCredentials.in_folder(settings.data_dir / "sdi", settings.sdi_cvr).environment(url))
    else:
        os.environ.update({"HUB_SDI_URL": f"{url}/sdi", "HUB_SDI_LOCAL": "true"})
    return port, _start_service(["sdi", "serve"], port, "local case index (SF1470 v6; its STS at /sts)")


def _service(command: list[str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub", *command, "--port", str(port)])


def _start_service(command: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    """A `hub` service in its own process on a loopback port, once it answers /healthz; exit 1 if it does not."""
    from hub.api.server_thread import wait_until_healthy

    url = f"http://127.0.0.1:{port}"
    proc = _service(command, port)
    try:
        wait_until_healthy(f"{url}/healthz", proc)
    except RuntimeError as exc:
        proc.kill()
        typer.echo(f"error: the {what} did not start: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{what} on {url}", err=True)
    return proc


@app.command()
def mllp(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 2575,
) -> None:
    """Run the HL7 v2 MLLP listener alone: each message stored, acted on and answered with its ACK."""
    import threading

    from hub.core.logging import configure
    from hub.hl7v2.ig_tables import IgTables
    from hub.hl7v2.mllp import MllpServer
    from hub.wiring import hl7v2_flow, hl7v2_handlers, mllp_tls, outbox_worker, preflight, sdi_handlers

    settings = _settings()
    configure(settings.log_level)
    problems = preflight(settings, host)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    if not IgTables.in_store(settings.standards_store).folder.is_dir():
        typer.echo(f"error: the standards store {settings.standards_store} has no V2-to-FHIR tables (which the "
                   "ADT mapping reads): run `hub schemas sync`", err=True)
        raise typer.Exit(2)
    engine = _database(settings)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    flow = hl7v2_flow(settings, engine)
    # Its own deliveries (application acknowledgements, SIU out), when run alone; beside `hub serve`'s workers a
    # row is claimed by one of them.
    outbox = outbox_worker(settings, engine, hl7v2_handlers(settings, engine) | sdi_handlers(settings, engine))
    outbox.start()
    tls = mllp_tls(settings)
    with MllpServer(flow.handle, host, port, max_connections=settings.mllp_max_connections,
                    frame_timeout=settings.mllp_frame_seconds, tls=tls).start_in_thread() as server:
        kind = ("TLS, client certificates required" if settings.mllp_tls_ca else "TLS") if tls else "plain"
        typer.echo(f"MLLP listener on {host}:{server.port} ({kind})", err=True)
        stopped.wait()  # then leaving the block stops the server: messages in hand are answered first
    outbox.stop()
    flow.close()


# dk-core's identifier systems of an organisation (GLN also as MedCom's older http:// form)
ORGANISATION_SYSTEMS = {"urn:oid:1.2.208.176.1.1": "SOR", "https://www.gs1.org/gln": "GLN",
                        "http://www.gs1.org/gln": "GLN", "http://cvr.dk": "CVR"}


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="The client's name (unique), e.g. the EOJ system and its owner")],
    organisation: Annotated[str, typer.Option(help="SYSTEM|VALUE: its organisation's SOR, GLN or CVR identifier")],
    scope: Annotated[str, typer.Option(help='Scopes it may be given, e.g. "system/Appointment.cruds hub/validate"')],
    jwks: Annotated[Path | None, typer.Option(help="Its public keys (JWKS file): private_key_jwt, no secret")] = None,
) -> None:
    """Register a client; prints JSON with its client_id and (without --jwks) its secret, shown this once."""
    import json

    from hub.auth import scopes
    from hub.auth.secrets import hashed, new_secret
    from hub.store.clients import ClientStore

    system, sep, value = organisation.partition("|")
    problems = []
    if not (sep and value and system in ORGANISATION_SYSTEMS):
        problems.append(f"--organisation: SYSTEM|VALUE with SYSTEM one of {', '.join(ORGANISATION_SYSTEMS)}")
    if not scope.split() or scopes.unknown(scope):
        problems.append(f"--scope: not SMART v2 system scopes or hub/ scopes: {' '.join(scopes.unknown(scope))}")
    keys = None
    if jwks is not None:
        try:
            keys = json.loads(jwks.read_text(encoding="utf-8"))
            assert isinstance(keys.get("keys"), list) and keys["keys"]
        except (OSError, ValueError, AssertionError, AttributeError):
            problems.append(f"--jwks: {jwks} is not a JWKS file with keys")
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    secret = None if keys else new_secret()
    try:
        client = ClientStore(_database(_settings())).add(name, organisation, " ".join(scope.split()),
                                                          hashed(secret) if secret else None, keys)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({**client.public(), **({"client_secret": secret} if secret else {})}))


@clients_app.command("list")
def clients_list() -> None:
    """The clients, one JSON object a line (never their secrets)."""
    import json

    from hub.store.clients import ClientStore

    for client in ClientStore(_database(_settings())).all():
        typer.echo(json.dumps(client.public()))


@clients_app.command("remove")
def clients_remove(client: Annotated[str, typer.Argument(help="Its name or client_id")]) -> None:
    """Remove a client: it gets no more tokens (those it has run out within five minutes)."""
    from hub.store.clients import ClientStore

    if not ClientStore(_database(_settings())).remove(client):
        typer.echo(f"error: no client {client!r}", err=True)
        raise typer.Exit(1)


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(help="Only rows in this state: pending, delivered, dead")] = None,
    topic: Annotated[str | None, typer.Option(help="Only rows of this topic, e.g. sdi.meeting")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
) -> None:
    """The outbox's rows: what waits, what failed and why (CPR numbers masked)."""
    from hub.core.cpr import mask_text
    from hub.delivery.worker import rows
    from hub.store.db import make_engine

    engine = make_engine(_settings().effective_database_url)
    for row in rows(engine, status, topic, limit):
        error = mask_text(row.last_error or "")
        typer.echo(f"{row.id}\t{row.topic}\t{row.status}\t{row.attempts}\t{row.next_attempt_at:%Y-%m-%d %H:%M:%S}"
                   f"\t{error}")


@outbox_app.command("replay")
def outbox_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="The rows to deliver again")] = None,
    dead: Annotated[bool, typer.Option(help="Every dead row (of --topic, if given)")] = False,
    topic: Annotated[str | None, typer.Option(help="With --dead: only this topic")] = None,
) -> None:
    """Put dead (or delivered) rows back to be delivered now, in their order."""
    from hub.delivery.worker import OutboxWorker, rows
    from hub.store.db import make_engine

    engine = make_engine(_settings().effective_database_url)
    chosen = list(ids or []) + ([r.id for r in rows(engine, "dead", topic, None)] if dead else [])
    if not chosen:
        typer.echo("error: name rows, or --dead", err=True)
        raise typer.Exit(2)
    worker = OutboxWorker(engine, {})
    replayed = [i for i in sorted(chosen) if worker.replay(i)]
    typer.echo(f"replayed {len(replayed)} of {len(chosen)}: {' '.join(map(str, replayed))}")
    if len(replayed) < len(chosen):
        raise typer.Exit(1)


@sdi_app.command("serve")
def sdi_serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8082,
    security: Annotated[str | None, typer.Option(help="oioidws (with the local STS at /sts) or none; "
                                                 "default HUB_SDI_SECURITY")] = None,
) -> None:
    """Run the local case index alone: SF1470 v6 over SOAP 1.1 at /sdi, checking requests as the index does, and
    with OIOIDWS its STS at /sts (certificates in the data folder's sdi/)."""
    import uvicorn

    from hub.core.logging import configure
    from hub.sdi.local.app import LocalCredentials, create_local_app

    settings = _settings()
    configure(settings.log_level)
    credentials = None
    if (security or settings.sdi_security) == "oioidws":
        credentials = LocalCredentials.in_folder(settings.data_dir / "sdi", settings.sdi_cvr)
    uvicorn.run(create_local_app(settings.standards_store, credentials), host=host, port=port, log_config=None,
                access_log=False)


@vdx_app.command("serve")
def vdx_serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8081,
    vmr_available_before: Annotated[int, typer.Option(help="Minutes a room is provisioned before start")] = 30,
    test_clock: Annotated[bool, typer.Option(help="Expose /_test/clock to move the service's clock")] = False,
) -> None:
    """Run the VDX-compatible service alone; with HUB_VDX_CLIENT_ID and HUB_VDX_CLIENT_SECRET it asks for OAuth2
    tokens from its /token endpoint, as the real VDX does."""
    import uvicorn

    from hub.core.logging import configure
    from hub.video.local import create_vdx_app

    settings = _settings()
    configure(settings.log_level)
    # OAuth2 client credentials as the real VDX asks for them, when given (`hub serve` gives its own)
    clients = ({settings.vdx_client_id: settings.vdx_client_secret}
               if settings.vdx_client_id and settings.vdx_client_secret else None)
    vdx = create_vdx_app(vmr_available_before=vmr_available_before, enable_test_clock=test_clock,
                         client_credentials=clients)
    uvicorn.run(vdx, host=host, port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    app()
