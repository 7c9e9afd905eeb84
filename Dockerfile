# The loopbot App container: `loopbot serve` (docs/app.md). Webhooks in on :8080, state in /data.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOOPBOT_DATABASE_URL=sqlite:////data/loopbot-app.db

# A user of its own; the SQLite database (when no PostgreSQL URL is given) lives in its volume.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin loopbot \
    && mkdir /data && chown loopbot:loopbot /data

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY loopbot ./loopbot
COPY prompts ./prompts
COPY goals ./goals
COPY .github/workflows ./.github/workflows
# What is installed is this source tree (DL3013 asks to pin a named package from an index).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[app]" && rm -rf /src

USER 10001:10001
WORKDIR /home/loopbot
VOLUME ["/data"]
EXPOSE 8080

# /healthz: the process answers. (Readiness, /readyz, is for the orchestrator: it also needs the database.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["loopbot", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
