"""Alembic environment: run programmatically by `yuqing.state.db.migrate` with an engine."""

from alembic import context

from yuqing.state.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
