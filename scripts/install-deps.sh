#!/usr/bin/env bash
# Installs the system packages Tresor builds, tests and benchmarks against (idempotent).
set -euo pipefail
packages=(libzstd-dev libssl-dev libcurl4-openssl-dev libsqlite3-dev libarchive-dev libpq-dev postgresql-15 zstd pkg-config)
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
