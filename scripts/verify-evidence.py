#!/usr/bin/env python3
"""Verify a Tresor evidence log with a public key alone (format: docs/evidence.md).

usage: verify-evidence.py LOG PUBLIC_KEY_FILE
PUBLIC_KEY_FILE holds 64 hex digits or a PEM PUBLIC KEY (`tresor evidence export-key [--pem]`).
Exit 0: intact. Exit 3: names the first bad record (or a torn final write). Exit 2: bad usage.
Needs the `cryptography` package (pip install cryptography).
"""
import hashlib, json, re, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

LINE = re.compile(rb'\A\{"sig":"([0-9a-f]{128})","record":(.*)\}\Z', re.S)
HEX64 = re.compile(r'\A[0-9a-f]{64}\Z')
DOMAIN = b"tresor-evidence-v1\n"


def load_key(path):
    data = open(path, "rb").read().strip()
    if data.startswith(b"-----BEGIN PUBLIC KEY-----"):
        key = load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode("ascii")))


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate member")
    return dict(pairs)


def verify(data, key):
    """Returns (records verified, None) or (records verified, (line, reason))."""
    *lines, tail = data.split(b"\n")
    prev, seq, current = "0" * 64, 1, key
    for number, line in enumerate(lines, 1):
        m = LINE.match(line)
        if not m:
            return seq - 1, (number, "not a record line")
        sig, body = bytes.fromhex(m.group(1).decode()), m.group(2)
        try:
            r = json.loads(body, object_pairs_hook=no_duplicates)
            ok = (isinstance(r, dict) and r.get("v") == 1 and type(r.get("seq")) is int
                  and isinstance(r.get("time"), str) and isinstance(r.get("kind"), str)
                  and (r.get("tenant") is None or isinstance(r.get("tenant"), str))
                  and HEX64.match(str(r.get("key"))) and HEX64.match(str(r.get("prev")))
                  and isinstance(r.get("payload"), dict))
        except ValueError:
            ok = False
        if not ok:
            return seq - 1, (number, "the record is not valid evidence JSON")
        try:
            current.verify(sig, DOMAIN + body)
        except InvalidSignature:
            return seq - 1, (number, "signature does not verify with the trusted key")
        if r["seq"] != seq:
            return seq - 1, (number, "sequence %d where %d was expected" % (r["seq"], seq))
        if r["prev"] != prev:
            return seq - 1, (number, "prev does not match the previous record's hash")
        if r["kind"] == "key-rotation":
            new = r["payload"].get("new_key")
            if not (isinstance(new, str) and HEX64.match(new)):
                return seq - 1, (number, "key-rotation without a valid new_key")
            current = Ed25519PublicKey.from_public_bytes(bytes.fromhex(new))
        prev, seq = hashlib.sha256(line).hexdigest(), seq + 1
    if tail:
        return seq - 1, (len(lines) + 1, "torn final write of %d bytes (no newline)" % len(tail))
    return seq - 1, None


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        key = load_key(sys.argv[2])
        data = open(sys.argv[1], "rb").read()
    except (OSError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    count, bad = verify(data, key)
    if bad:
        print("BAD: line %d: %s (%d records verified before it)" % (bad[0], bad[1], count))
        return 3
    print("intact: %d records verified" % count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
