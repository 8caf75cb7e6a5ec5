// TresorEvidence: the append-only, hash-chained, signed evidence log.
//
// Drills, control checks, deletions, sweeps, exports, region approvals and key rotations each
// append one record: JSON without customer content (ids, hashes, counts, times, versions,
// results). Each record carries the SHA-256 of the previous record's line and an Ed25519
// signature by the installation's evidence key, so an auditor holding only the public key can
// check that nothing was changed, removed, reordered or inserted (`EvidenceVerifier`, or
// `scripts/verify-evidence.py` without Tresor). The format is specified in docs/evidence.md.
//
// The log lives at HOME/evidence/log.jsonl, apart from tenant data, and outlives the tenants it
// speaks about; `EvidenceReplicator` copies it to the offsite store. `EvidenceLog` explains how
// appends stay atomic across crashes and serialized across processes.
//
// This module imports Core, Crypto and Store, never Repository: evidence must stay readable when
// a tenant's repository is gone.
