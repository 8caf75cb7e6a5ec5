import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorEvidence

struct EvidenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evidence", abstract: "The signed, hash-chained evidence log (docs/evidence.md).",
        subcommands: [Verify.self, List.self, ExportKey.self, RotateKey.self, Replicate.self, Report.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every record's chain link and signature; exit 3 naming the first bad record.")
        @Option(help: "The log to check (default: HOME/evidence/log.jsonl).") var log: String?
        @Option(
            name: .customLong("public-key"),
            help: "The trusted public key, hex or PEM (default: the home's keys/evidence.pub; never a key from the log).")
        var publicKey: String?

        func run() throws {
            let r = try Installation.verifyEvidence(
                home: ctx.home, configFile: ctx.configFile,
                log: log.map { URL(fileURLWithPath: $0) },
                publicKey: publicKey.map { URL(fileURLWithPath: $0) })
            ctx.emit(r, outcome: r.outcome) {
                var lines: [String] = []
                if let bad = r.firstBad {
                    lines.append("BAD: line \(bad.line)\(bad.seq.map { " (record \($0))" } ?? ""): \(bad.reason)")
                    lines.append("  \(r.verifiedRecords) records before it verified; nothing after it is trusted")
                } else {
                    lines.append(
                        "\(r.intact ? "intact: " : "")\(r.verifiedRecords) records verified from the key with fingerprint \(r.trustedKeyFingerprint.prefix(16))…"
                    )
                }
                if let seq = r.headSeq, let hash = r.headHash { lines.append("  last good record \(seq), hash \(hash)") }
                if r.keys.count > 1 { lines.append("  \(r.keys.count - 1) key rotations followed") }
                if r.tornTailBytes > 0 {
                    lines.append("PROBLEM: \(r.tornTailBytes) bytes after the last record: a write torn by a crash (the next append sets them aside)")
                }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List evidence records (not a verification: see evidence verify).")
        @Option(help: "Only records about this tenant.", transform: TenantID.init) var tenant: TenantID?
        @Option(help: "Only records of this kind: \(EvidenceKind.allCases.map(\.rawValue).joined(separator: ", ")).") var kind: String?
        @Option(help: "Only records at or after this date/time.") var since: String?

        func validate() throws {
            if let kind, EvidenceKind(rawValue: kind) == nil {
                throw ValidationError("unknown evidence kind '\(kind)': use one of \(EvidenceKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let since, TimeFormat.parse(since) == nil {
                throw ValidationError("cannot read time '\(since)': use RFC 3339, e.g. 2026-11-01 or 2026-11-27T10:00:00Z")
            }
        }

        func run() throws {
            let r = try ctx.installation().listEvidence(
                tenant: tenant, kind: kind.flatMap(EvidenceKind.init(rawValue:)),
                since: since.flatMap(TimeFormat.parse))
            ctx.emit(r, outcome: r.outcome) {
                var lines = r.entries.isEmpty ? ["no evidence records match"] : []
                lines += r.entries.map { e in
                    "\(e.seq)\t\(e.time)\t\(e.kind)\t\(e.tenant ?? "-")\t\(Self.payloadText(e.payload))"
                }
                if !r.unreadableLines.isEmpty {
                    lines.append("PROBLEM: unreadable lines \(r.unreadableLines.map(String.init).joined(separator: ", ")): run tresor evidence verify")
                }
                if r.tornTailBytes > 0 { lines.append("PROBLEM: \(r.tornTailBytes) bytes of a torn final write after the last record") }
                return lines.joined(separator: "\n")
            }
        }

        /// A record's payload as one line of JSON; a payload that cannot be encoded says so.
        static func payloadText(_ payload: [String: EvidenceValue]) -> String {
            do {
                return String(decoding: try JSONEncoder.sorted.encode(payload), as: UTF8.self)
            } catch {
                return "(payload could not be shown: \(error))"
            }
        }
    }

    struct ExportKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-key",
            abstract: "Print the evidence public key auditors verify with (64 hex digits, or PEM with --pem).")
        @Flag(help: "Print a PEM PUBLIC KEY block (SubjectPublicKeyInfo) instead of hex.") var pem = false
        @Flag(help: "The key that signs new records now, instead of the anchor key in keys/evidence.pub.") var current = false

        func run() throws {
            let k = try Installation.exportEvidenceKey(home: ctx.home, configFile: ctx.configFile, current: current)
            ctx.emit(k) { pem ? k.pem.trimmingCharacters(in: .newlines) : k.hex }
        }
    }

    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key", abstract: "Sign a record naming a new evidence key with the current one, then switch to it.")

        func run() throws {
            let r = try ctx.installation().rotateEvidenceKey()
            ctx.emit(r) { "record \(r.seq): key \(r.oldKeyFingerprint.prefix(16))… hands over to \(r.newKeyFingerprint.prefix(16))…" }
        }
    }

    struct Replicate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the records a store lacks to evidence/ in it (if-absent puts); exit 3 when a copy there differs.")
        @Option(help: "The store to copy to (usually the offsite store).") var to: String

        func run() throws {
            let r = try ctx.installation().replicateEvidence(to: to)
            ctx.emit(r, outcome: r.outcome) {
                var lines = ["\(r.copied) evidence records copied to \(r.store)/\(r.prefix), \(r.alreadyPresent) of \(r.records) already there"]
                if !r.conflicts.isEmpty {
                    lines.append("PROBLEM: records \(r.conflicts.map(String.init).joined(separator: ", ")) differ in the store: one of the copies was changed")
                }
                if !r.unreadableLines.isEmpty {
                    lines.append(
                        "PROBLEM: unreadable lines \(r.unreadableLines.map(String.init).joined(separator: ", ")) not copied: run tresor evidence verify")
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
