#!/usr/bin/env bash
# Installs what is missing, builds Tresor and runs its main job on the embedded default:
# a home under a temp dir (SQLite catalog, keys, policies), a local store, a tenant whose
# documents are testdata/documents: backup, restore, compare, check.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release --product tresor
TRESOR=$PWD/.build/release/tresor
WORK=$(mktemp -d /tmp/tresor-quickstart.XXXXXX)
export TRESOR_HOME=$WORK/home
set -x
$TRESOR init
$TRESOR store add local --url "file://$WORK/store" --region eu-central
$TRESOR tenant add acme --region eu-central --store local --docs "$PWD/testdata/documents"
$TRESOR docs backup acme
$TRESOR snapshots acme
$TRESOR docs restore acme --to "$WORK/restored"
diff -r testdata/documents "$WORK/restored/documents"
$TRESOR check acme --read-data
set +x
echo "quick start done: everything lives in $WORK (TRESOR_HOME=$TRESOR_HOME)"
