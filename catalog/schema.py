"""Schema migrations through Alembic's API, on the catalog's own engine."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command, util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import migrations
from catalog.errors import ConfigurationError
from catalog.vector_index import use_halfvec

# Any constant works; it only has to be the same for every footage process, so
# two commands starting at once do not both migrate.
_MIGRATION_LOCK = 0x666F6F74


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def revisions() -> list[str]:
    """Every schema revision, oldest first."""
    return [script.revision for script in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))]


def _run(engine: Engine, action: str, revision: str, host: str | None = None) -> None:
    config = _config()
    # Paths an older catalog holds are this host's: they move onto its own storage (0008).
    config.attributes["footage_host"] = host
    script = ScriptDirectory.from_config(config)
    if revision not in ("head", "base"):
        try:
            script.get_revision(revision)
        except util.CommandError:
            known = ", ".join(revisions())
            raise ConfigurationError(
                f"no schema revision {revision!r}: footage knows {known} (and head, base); "
                "`footage db status` shows where the catalog is"
            ) from None
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)
        if action == "upgrade" and revision == "head":
            # A catalog migrated while its pgvector lacked halfvec catches up here
            # once the extension is updated (or the embedded server upgraded).
            use_halfvec(conn)


def upgrade(engine: Engine, revision: str = "head", host: str | None = None) -> None:
    """Migrate the catalog forward to ``revision`` (default: newest); a no-op when there.
    ``host``: the host whose absolute paths an older catalog holds (default: this machine's name)."""
    _run(engine, "upgrade", revision, host)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the catalog back to ``revision`` (``base`` removes every footage table)."""
    _run(engine, "downgrade", revision)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic filter: the job queue's objects belong to procrastinate, not to our models."""
    return not (type_ == "table" and name is not None and name.startswith("procrastinate_"))
