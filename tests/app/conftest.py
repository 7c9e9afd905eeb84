from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from loopbot.app import db
from loopbot.app.store import AppStore
from loopbot.testing.postgres import PostgresServer, binaries, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server per test process; skipped only where its binaries are absent
    (.ci/run installs Debian's postgresql, so CI always runs these)."""
    found = binaries()
    if found is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    with postgres_server(found) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_app_db(postgres: PostgresServer) -> str:
    """One migrated database per test process; each test empties it (far faster than a new one)."""
    url = postgres.create_database("app")
    AppStore.open(url).close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated-on-open database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    url: str = request.getfixturevalue("postgres_app_db")
    engine = db.connect(url)
    names = ", ".join(table.name for table in db.metadata.sorted_tables if table.name != "schema_migrations")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    engine.dispose()
    return url
