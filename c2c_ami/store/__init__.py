"""Persistence behind one interface (``Storage``): SQLite (embedded, the default) or
PostgreSQL, with the same schema and migrations."""
from ..config import StorageConfig
from .base import (
    COUNT_CAP,
    MAX_PAGE,
    Bucket,
    CallWrite,
    ClickClaim,
    ClickClaimed,
    Delivery,
    HookLimitReached,
    LiveClaim,
    LogEvent,
    RequestKey,
    Storage,
    StorageError,
    StorageUnavailable,
)
from .health import StoreHealth, keep_watch, store_needed
from .migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from .sql import EVENTS_CHANNEL
from .sqlite import SqliteStorage, migrate

__all__ = ["COUNT_CAP", "EVENTS_CHANNEL", "MAX_PAGE", "Bucket", "CallWrite", "ClickClaim", "ClickClaimed", "LiveClaim",
           "LogEvent", "RequestKey", "MIGRATIONS", "SCHEMA_VERSION", "Delivery", "HookLimitReached", "Migration",
           "SqliteStorage", "Storage",
           "StorageError", "StorageUnavailable", "StoreHealth", "keep_watch", "migrate", "open_storage",
           "store_needed"]


async def open_storage(config: StorageConfig) -> Storage:
    """The store the config names, its schema brought up to date."""
    if config.backend == "postgresql":
        from .postgres import PostgresStorage  # asyncpg is only needed for PostgreSQL
        return await PostgresStorage.connect(config.url)
    return SqliteStorage(config.sqlite_path)
