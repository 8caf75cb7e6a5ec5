#!/usr/bin/env bash
# Throughput of the primitives every Tresor pipeline is built on, on this machine: SHA-256,
# HMAC-SHA-256 and AES-256-GCM from OpenSSL's libcrypto (Tresor calls them through EVP) and
# zstd level 3 from libzstd (Tresor links the same libraries). Single thread, 1 MiB buffers.
#
#   bash Benchmarks/primitives.sh [--seconds 3]
#
# These figures were printed by two test suites (CryptoThroughput, ZstdThroughput) until the
# structure issue moved every speed measurement out of the tests: they bound what the document
# and base-backup benchmarks can reach, so read them beside those, on the same machine.
set -euo pipefail
SECONDS_EACH=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_EACH=${2:?}; shift 2 ;;
        *) echo "primitives: unknown argument: $1" >&2; exit 2 ;;
    esac
done
for tool in openssl zstd python3; do
    command -v "$tool" >/dev/null || { echo "primitives: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/tresor-primitives.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== libcrypto ($(openssl version)), 1 MiB buffers, one thread"
openssl speed -seconds "$SECONDS_EACH" -bytes 1048576 -evp sha256 2>/dev/null | tail -1
openssl speed -seconds "$SECONDS_EACH" -bytes 1048576 -hmac sha256 2>/dev/null | tail -1
openssl speed -seconds "$SECONDS_EACH" -bytes 1048576 -evp aes-256-gcm 2>/dev/null | tail -1

# Text like the corpus's (seeded words, Zipf-weighted) and random bytes, 16 MiB each.
python3 - "$WORK" <<'PY'
import random, sys
out = sys.argv[1]
rng = random.Random(1)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(5000)]
weights = [1 / (i + 1) for i in range(len(words))]
with open(f"{out}/text", "w") as f:
    written = 0
    while written < 16 << 20:
        block = "\n".join(" ".join(rng.choices(words, weights, k=12)) for _ in range(1000)) + "\n"
        f.write(block)
        written += len(block)
with open(f"{out}/random", "wb") as f:
    f.write(rng.randbytes(16 << 20))
PY
echo "== libzstd ($(zstd --version | grep -o 'v[0-9.]*')), level 3, 1 MiB blocks, one thread"
for input in text random; do
    printf '%-7s' "$input"
    # zstd -b rewrites one line with \r; its last complete form holds compress and decompress speed.
    zstd -b3 -B1M -T1 -i"$SECONDS_EACH" "$WORK/$input" 2>&1 | tr '\r' '\n' | grep -E 'MB/s, .*MB/s' | tail -1 | sed 's/^ *|-[^:]*: *//' 
done
