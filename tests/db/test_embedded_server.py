"""The embedded server is configured for one large rewriting transaction."""

from __future__ import annotations

import psycopg

from db.connection import BATCH_WRITE_SETTINGS, _in_units, embedded_server


def test_the_embedded_server_checkpoints_rarely_compresses_full_pages_and_holds_the_users(tmp_path):
    # a new data folder's server is restarted once, so even shared_buffers holds from the start
    with embedded_server(tmp_path / "pgdata", quiet=True) as uri:
        with psycopg.connect(uri) as c:
            rows = c.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", [list(BATCH_WRITE_SETTINGS)]).fetchall()
    assert {name: _in_units(setting, unit) for name, setting, unit in rows} == BATCH_WRITE_SETTINGS
