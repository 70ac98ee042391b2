"""The embedded server is configured for one large rewriting transaction."""

from __future__ import annotations

import psycopg

from db.connection import BATCH_WRITE_SETTINGS, embedded_server


def test_the_embedded_server_checkpoints_rarely_and_compresses_full_pages(tmp_path):
    with embedded_server(tmp_path / "pgdata", quiet=True) as uri:
        with psycopg.connect(uri) as c:
            settings = dict(c.execute("SELECT name, setting || COALESCE(unit, '') FROM pg_settings WHERE name = ANY(%s)", [list(BATCH_WRITE_SETTINGS)]).fetchall())
            buffers = c.execute("SHOW shared_buffers").fetchone()[0]
    # a new data folder's server is restarted once, so even shared_buffers holds from the start
    assert {k: v for k, v in settings.items() if k != "shared_buffers"} == {"max_wal_size": "8192MB", "checkpoint_timeout": "1800s", "wal_compression": "pglz"}
    assert buffers.replace("GB", "") == str(int(BATCH_WRITE_SETTINGS["shared_buffers"][:-2]) // 1024) or buffers == BATCH_WRITE_SETTINGS["shared_buffers"]
