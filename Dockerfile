# sql-traits daemon: schedules every enabled trait, serves /healthz and /metrics on :9465.
#
#   docker build -t sql-traits .
#   docker run -d --name traits -v "$PWD/config:/config" -p 127.0.0.1:9465:9465 \
#     -e WAREHOUSE_DSN -e SEGMENT_WRITE_KEY --stop-timeout 60 sql-traits
#
# State lives in /config/.traits unless settings.state (or TRAITS_STATE) points at Postgres;
# the config volume must then be writable by uid 10001.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# the project itself; wheels of every optional driver are built into one venv we copy out
COPY pyproject.toml README.md ./
COPY traits ./traits
RUN python -m venv /opt/traits \
 && /opt/traits/bin/pip install --upgrade pip \
 && /opt/traits/bin/pip install '.[all]'

FROM python:3.11-slim
ENV PATH=/opt/traits/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRAITS_CONFIG=/config
# a fixed uid/gid so a bind-mounted /config can be chowned to match
RUN groupadd --system --gid 10001 traits \
 && useradd --system --uid 10001 --gid traits --home-dir /home/traits --create-home traits \
 && mkdir -p /config && chown traits:traits /config
COPY --from=build /opt/traits /opt/traits
USER traits
WORKDIR /config
VOLUME ["/config"]
EXPOSE 9465
# SIGTERM lets running traits finish for TRAITS_SHUTDOWN_GRACE (30 s); give docker stop more
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9465/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["traits"]
CMD ["daemon", "--host", "0.0.0.0", "--port", "9465"]
