#!/usr/bin/env bash
# Installs what is missing, builds Tresor and runs its main jobs on the embedded default:
# a home under a temp dir (SQLite catalog, keys, policies) and a local store;
#  1. documents: a tenant whose documents are testdata/documents: backup, restore, compare, check;
#  2. PostgreSQL: a scratch cluster archiving its WAL into Tresor, a base backup, rows written
#     before and after a target time, a point-in-time restore, and the restored rows checked;
#  3. export: the tenant's documents and live database as a BagIt bag, checked with bagit.py,
#     then published and downloaded through a signed link from `tresor serve`, as a customer would;
#  4. a restore drill (restore, recovery, checks, a document sample) and a self-test over damaged
#     copies, recorded in the signed evidence log, the log verified (by Tresor and by the auditors' Python script), the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release --product tresor --static-swift-stdlib
TRESOR=$PWD/.build/release/tresor
WORK=$(mktemp -d /tmp/tresor-quickstart.XXXXXX)
chmod 755 "$WORK"          # the postgres user runs archive_command and must reach the home
export TRESOR_HOME=$WORK/home
PGBIN=/usr/lib/postgresql/15/bin
cleanup() {
  [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
  for d in "$WORK/pg" "$WORK/pg-restored"; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
set -x
# --- documents -------------------------------------------------------------------------------
$TRESOR init
$TRESOR store add local --url "file://$WORK/store" --region eu-central
$TRESOR tenant add acme --region eu-central --store local --docs "$PWD/testdata/documents" \
  --pg "host=127.0.0.1 port=55432 user=postgres dbname=postgres"
$TRESOR docs backup acme
$TRESOR snapshots acme
$TRESOR docs restore acme --to "$WORK/restored"
diff -r testdata/documents "$WORK/restored/documents"
$TRESOR check acme --read-data

# --- PostgreSQL point-in-time recovery on a scratch cluster ----------------------------------
install -d -o postgres -g postgres "$WORK/pg" "$WORK/sock" "$WORK/logs"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync --data-checksums >/dev/null  # drills need checksums
$TRESOR pg setup acme                                  # prepares access for postgres, prints the settings
ARCHIVE=$($TRESOR --json pg setup acme | python3 -c 'import json,sys; print(json.load(sys.stdin)["settings"]["archive_command"])')
cat >> "$WORK/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = 55432
unix_socket_directories = '$WORK/sock'
wal_level = replica
archive_mode = on
archive_command = '$ARCHIVE'
CONF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/logs/pg.log" -w start >/dev/null
PSQL="psql -X -At -h 127.0.0.1 -p 55432 -U postgres -d postgres"
$PSQL -c "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
$TRESOR pg basebackup acme
$PSQL -c "INSERT INTO orders (id) SELECT generate_series(1, 100)"
sleep 1; TARGET=$($PSQL -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"); sleep 1
$PSQL -c "INSERT INTO orders (id) SELECT generate_series(101, 200)"   # after the target: must not come back
$PSQL -c "SELECT pg_switch_wal()" >/dev/null
sleep 3                                                # archive_command ships the switched segment
$TRESOR pg window acme
$TRESOR pg restore acme --pgdata "$WORK/pg-restored" --target-time "$TARGET"
chown -R postgres:postgres "$WORK/pg-restored"
sed -i "s/^port = 55432/port = 55433/" "$WORK/pg-restored/postgresql.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg-restored" -l "$WORK/logs/pg-restored.log" -w -t 120 start >/dev/null
for _ in $(seq 120); do [ "$(psql -X -At -h 127.0.0.1 -p 55433 -U postgres -d postgres -c 'SELECT pg_is_in_recovery()')" = f ] && break; sleep 1; done
ROWS=$(psql -X -At -h 127.0.0.1 -p 55433 -U postgres -d postgres -c "SELECT count(*) FROM orders")
set +x
[ "$ROWS" = 100 ] || { echo "point-in-time restore gave $ROWS rows, expected 100"; exit 1; }

# --- exit export: documents and the live database as a BagIt bag, checked by the LoC validator -
set -x
$TRESOR export acme --out "$WORK/acme-export.tar.zst"
mkdir "$WORK/export" && tar --zstd -xf "$WORK/acme-export.tar.zst" -C "$WORK/export"
bagit.py --validate "$WORK/export/acme-export"
# the same export published, and downloaded through a signed, expiring link (resumable with curl -C -)
$TRESOR export acme --publish --out acme.tar.zst
$TRESOR serve --listen 127.0.0.1:58080 >"$WORK/logs/serve.log" 2>&1 &
SERVE_PID=$!
LINK=$($TRESOR export link acme acme.tar.zst --expires 1d --base http://127.0.0.1:58080 | head -1)
for _ in $(seq 100); do curl -fs -r 0-0 -o /dev/null "$LINK" && break; sleep 0.2; done
curl -fsS -C - -o "$WORK/acme-download.tar.zst" "$LINK"
kill "$SERVE_PID"; SERVE_PID=
set +x
[ "$(sha256sum <"$WORK/acme-download.tar.zst")" = "$(sha256sum <"$TRESOR_HOME/exports/acme/acme.tar.zst")" ] \
  || { echo "the downloaded export differs from the published one"; exit 1; }

# --- restore drill, the signed evidence log, the auditors' report -----------------------------
set -x
$TRESOR drill run acme --target latest                 # exit 3 if any check failed or could not run
$TRESOR drill self-test acme                           # the same checks over damaged copies: each damage must be caught
$TRESOR evidence verify
python3 scripts/verify-evidence.py "$TRESOR_HOME/evidence/log.jsonl" "$TRESOR_HOME/keys/evidence.pub"
$TRESOR evidence report --out "$WORK/report.html"
set +x
echo "quick start done: documents restored byte for byte; PostgreSQL restored to $TARGET with the 100 rows written before it;"
echo "export $WORK/acme-export.tar.zst validated as a BagIt bag and downloaded through a signed link byte for byte;"
echo "a restore drill passed and is in the verified evidence log;"
echo "the auditors' report is $WORK/report.html"
echo "everything lives in $WORK (TRESOR_HOME=$TRESOR_HOME)"
