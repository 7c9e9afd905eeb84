"""The App's settings, from the environment: read once in serve.py and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopbot.errors import InputError, Problem

# GitHub caps a webhook payload at 25 MB; anything larger is not from GitHub.
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
DEFAULT_DATABASE_URL = "sqlite:///./loopbot-app.db"

# Environment variable -> settings field.
ENV = {
    "LOOPBOT_WEBHOOK_SECRET": "webhook_secrets",
    "LOOPBOT_DATABASE_URL": "database_url",
    "LOOPBOT_APP_ID": "app_id",
    "LOOPBOT_APP_PRIVATE_KEY": "private_key",
    "LOOPBOT_API_TOKEN": "api_token",
    "GITHUB_API_URL": "github_api_url",
    "LOOPBOT_APP_WORKERS": "workers",
    "LOOPBOT_APP_REPO_CONCURRENCY": "per_repo_concurrency",
    "LOOPBOT_APP_RECONCILE_INTERVAL": "reconcile_interval_s",
    "LOOPBOT_APP_DRAIN_SECONDS": "drain_seconds",
}


class AppSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Several during a rotation: a delivery signed with any of them is accepted.
    webhook_secrets: list[str] = Field(default_factory=list, repr=False)
    database_url: str = DEFAULT_DATABASE_URL
    app_id: int | None = Field(None, gt=0)
    private_key: str | None = Field(None, repr=False)  # PEM text (a path in the environment is read)
    api_token: str | None = Field(None, repr=False)
    github_api_url: str = "https://api.github.com"
    workers: int = Field(2, ge=0, le=64)  # 0: a web process; `loopbot worker` dispatches
    per_repo_concurrency: int = Field(1, ge=1)
    reconcile_interval_s: float = Field(300.0, gt=0)
    drain_seconds: float = Field(10.0, ge=0)
    max_body_bytes: int = Field(MAX_WEBHOOK_BYTES, gt=0)

    def credentials_missing(self) -> str | None:
        """Why dispatch cannot run (no App id or key), or None when both are there."""
        missing = [name for name, value in (("LOOPBOT_APP_ID", self.app_id),
                                            ("LOOPBOT_APP_PRIVATE_KEY", self.private_key)) if not value]
        return f"App credentials missing: {', '.join(missing)}" if missing else None

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> AppSettings:
        """The settings the environment names; flags (host, port) as overrides. Bad values are an
        InputError naming the variable, never a traceback; an empty variable counts as unset."""
        values: dict[str, object] = {}
        problems: list[Problem] = []
        for var, name in ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            if name == "webhook_secrets":
                values[name] = [s.strip() for s in raw.split(",") if s.strip()]
            elif name == "private_key":
                values[name] = _pem(raw, problems)
            else:
                values[name] = raw
        values.update(overrides)
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            by_field = {name: var for var, name in ENV.items()}
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                problems.append(Problem(by_field.get(field, f"--{field}"), None, None, "", error["msg"]))
        if problems:
            raise InputError(problems)
        return settings


def _pem(raw: str, problems: list[Problem]) -> str | None:
    """LOOPBOT_APP_PRIVATE_KEY holds the PEM itself or the path of a file that does."""
    if "-----BEGIN" in raw:
        return raw.replace("\\n", "\n")  # a key pasted into one line with literal \n
    try:
        text = Path(raw).read_text()
    except OSError as exc:
        problems.append(Problem("LOOPBOT_APP_PRIVATE_KEY", None, None, "",
                                f"neither a PEM key nor a readable file: {exc.strerror or exc}"))
        return None
    if "-----BEGIN" not in text:
        problems.append(Problem("LOOPBOT_APP_PRIVATE_KEY", None, None, "", f"{raw} holds no PEM key"))
        return None
    return text
