"""Alembic environment: runs on the connection handed over by ``db.migrate``."""

from alembic import context

from db.schema import metadata

VERSION_TABLE = "mlm_alembic_version"  # the platform may run Alembic itself; never share its table


def _include_object(obj, name, type_, reflected, compare_to):
    # Only the project's own tables are under these migrations.
    if type_ == "table":
        return name.startswith("mlm_") and name != VERSION_TABLE
    return True


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_object=_include_object,
)
with context.begin_transaction():
    context.run_migrations()
