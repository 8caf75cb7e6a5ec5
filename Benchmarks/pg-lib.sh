# Shared by the PostgreSQL benchmarks (sourced, not run; as root). Expects ROOT (the checkout),
# BIN (PostgreSQL 15's bin directory; pg_bench_prelude sets it) and WORK (the run's directory,
# owned by postgres). Everything lives in WORK: data/ (the cluster), sock/, pgbackrest.conf and
# pgbr-*/ (pgBackRest's repo, lock, log, spool).

# pg_bench_prelude NAME: what every PostgreSQL benchmark needs before it starts: root, pgBackRest,
# and TRESOR (TRESOR_BIN, else the release build, built statically when missing). Sets BIN.
pg_bench_prelude() {
    BIN=/usr/lib/postgresql/15/bin
    TRESOR=${TRESOR:-${TRESOR_BIN:-$ROOT/.build/release/tresor}}
    [ -x "$TRESOR" ] || (cd "$ROOT" && swift build -c release --product tresor --static-swift-stdlib)
    [ "$(id -u)" -eq 0 ] || { echo "$1: run as root (postgres runs through runuser)" >&2; exit 2; }
    command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
}

as_pg() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# pg_init PORT ARCHIVE_COMMAND: initdb WORK/data as postgres, archiving with ARCHIVE_COMMAND,
# listening on 127.0.0.1:PORT and WORK/sock, then starts it. INITDB_EXTRA: more initdb options.
pg_init() {
    mkdir -p "$WORK/sock"; chown postgres "$WORK/sock"
    as_pg "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C ${INITDB_EXTRA:-} >/dev/null
    cat >> "$WORK/data/postgresql.conf" <<CONF
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/sock'
wal_level = replica
archive_mode = on
archive_command = '$2'
max_wal_size = 1GB
CONF
    as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
}

# pgbr_config PORT: writes WORK/pgbackrest.conf for stanza "bench" on WORK/data (zst level 3,
# process-max 2, a local posix repo) and sets PGBR to the command line that uses it.
pgbr_config() {
    mkdir -p "$WORK/pgbr-repo" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
    chown postgres "$WORK/pgbr-repo" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
    cat > "$WORK/pgbackrest.conf" <<CONF
[global]
repo1-path=$WORK/pgbr-repo
compress-type=zst
compress-level=3
process-max=2
repo1-retention-full=99
log-level-console=warn
log-level-file=off
lock-path=$WORK/pgbr-lock
spool-path=$WORK/pgbr-spool
start-fast=y

[bench]
pg1-path=$WORK/data
pg1-port=$1
pg1-socket-path=$WORK/sock
CONF
    chmod 644 "$WORK/pgbackrest.conf"
    PGBR="pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench"
}

# tresor_setup PORT: a Tresor home in WORK/tresor-home (exported as TRESOR_HOME), a local store in
# WORK/tresor-store, tenant "bench" on the cluster at PORT, and WAL access for the postgres user.
# Expects TRESOR (the binary).
tresor_setup() {
    export TRESOR_HOME=$WORK/tresor-home
    "$TRESOR" init >/dev/null
    "$TRESOR" store add local --url "file://$WORK/tresor-store" --region bench >/dev/null
    "$TRESOR" tenant add bench --region bench --store local --pg "host=127.0.0.1 port=$1 user=postgres dbname=postgres" >/dev/null
    "$TRESOR" pg setup bench >/dev/null
}
