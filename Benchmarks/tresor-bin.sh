# Sourced by the key-rotation and crash scripts: sets BIN to TRESOR_BIN, else the release
# binary, else the debug one, and stops when it is not executable. Expects ROOT.
BIN=${TRESOR_BIN:-}
if [[ -z "$BIN" ]]; then
    if [[ -x "$ROOT/.build/release/tresor" ]]; then BIN=$ROOT/.build/release/tresor; else BIN=$ROOT/.build/debug/tresor; fi
fi
[[ -x "$BIN" ]] || { echo "no tresor binary at $BIN (swift build first, or set TRESOR_BIN)" >&2; exit 2; }
