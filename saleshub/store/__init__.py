"""The PostgreSQL store: schema, migrations, connections, the embedded server and the repositories."""
