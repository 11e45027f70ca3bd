# The hub as a container: `docker build -t hub .`; `compose.yaml` runs two instances on one PostgreSQL.
# The official standards are not in the image (the project commits none): mount them at /standards
# (e.g. `-v ../shared/standards:/standards:ro`); the entry point syncs them into the data volume, then serves.
# MLLP on 0.0.0.0 needs TLS (HUB_MLLP_TLS_CERT, _KEY, _CA and _SENDERS) or HUB_MLLP_ALLOW_PLAIN=true: it says so.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HUB_DATA_DIR=/var/lib/hub HUB_STANDARDS_DIR=/standards
WORKDIR /opt/hub
COPY pyproject.toml constraints.txt README.md ./
COPY hub ./hub
COPY mappings ./mappings
COPY schemas ./schemas
# editable: the hub finds mappings/ and schemas/ beside its package (hub.core.mappings, hub.core.standards)
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && useradd --system --home-dir /var/lib/hub --create-home hub
USER hub
VOLUME /var/lib/hub
EXPOSE 8080 2575
# SIGTERM (docker stop) stops every part and exits 0 (README "What runs").
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["sh", "-c", "hub schemas sync && exec hub serve --host 0.0.0.0 \"$@\"", "hub"]
CMD ["--port", "8080", "--mllp-port", "2575"]
