// The libpq client (``PGConnection``, ``ConnInfo``, ``PostgresError``, ``redactDSN(_:)``) lives in
// TresorLibpq so the PostgreSQL catalog can use it without the replication code; it is
// re-exported here so every user of TresorPostgres keeps seeing it.
@_exported import TresorLibpq
