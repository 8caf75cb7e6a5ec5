#!/usr/bin/env python3
"""Drafts a JSON Schema (2020-12) from sample `--json` outputs of one tresor command.

    python3 scripts/json-schema-draft.py COMMAND "DESCRIPTION" SAMPLE.json... > docs/json/COMMAND.schema.json

Objects get the keys of the samples as properties; a key present in every sample is required
(tresor leaves absent optional values out, so a key seen only sometimes is optional). Objects
whose keys are names (tenants, stores, paths) rather than fields are maps: list their parent
keys in MAPS. Numbers are "number" (integers validate as numbers). Review the draft: it says
what one run printed, and the docs must say what every run may print.
"""
import json
import sys

MAPS = {"tenants", "affected", "damagedIndexes", "damagedKeys", "damagedPacks", "failed", "incomplete",
        "bytesToFree", "damagedIndexObjects", "$root-map", "payload", "removed"}


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def infer(values, key=None):
    types = sorted({kind(v) for v in values})
    schema = {"type": types[0] if len(types) == 1 else types}
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        if key in MAPS:
            inner = [x for o in objects for x in o.values()]
            schema["additionalProperties"] = infer(inner, key + "[]") if inner else {}
        else:
            keys = sorted({k for o in objects for k in o})
            schema["properties"] = {k: infer([o[k] for o in objects if k in o], k) for k in keys}
            schema["required"] = [k for k in keys if all(k in o for o in objects)]
    arrays = [v for v in values if isinstance(v, list)]
    if arrays:
        items = [x for a in arrays for x in a]
        schema["items"] = infer(items, key) if items else {}
    return schema


def main():
    command, description, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    samples = [json.load(open(p)) for p in paths]
    root_key = "$root-map" if command in ("retention plan",) else None
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": "https://tresor.invalid/json/" + command.replace(" ", "-") + ".schema.json",
              "title": "tresor " + command + " --json", "description": description}
    schema.update(infer(samples, root_key))
    json.dump(schema, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


main()
