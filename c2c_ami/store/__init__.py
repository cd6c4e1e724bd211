"""Persistence behind one interface (``Storage``); SQLite is the embedded backend."""
from .base import MAX_PAGE, Storage, StorageError
from .migrations import MIGRATIONS, SCHEMA_VERSION
from .sqlite import SqliteStorage, migrate

__all__ = ["MAX_PAGE", "MIGRATIONS", "SCHEMA_VERSION", "SqliteStorage", "Storage", "StorageError", "migrate"]
