import Foundation
@testable import TresorCore
@testable import TresorCrypto
@testable import TresorEvidence
@testable import TresorPostgres
@testable import TresorRepository
@testable import TresorStore

// One libFuzzer binary for every parser; TRESOR_FUZZ_TARGET names the one to run (fuzz.sh sets
// it). The program's own entry point hands the command line to libFuzzer (LLVMFuzzerRunDriver),
// after writing seeds when asked to. Every parser must answer malformed bytes with a thrown error or nil: a trap, a failed
// precondition or an out-of-bounds read is a crash that libFuzzer reports and saves.

/// Fixed keys: the fuzz inputs are sealed with them where a parser only sees authenticated bytes,
/// so the parsing behind the authentication is reached too.
let tenantKeys = TenantKeys(dataKey: [UInt8](repeating: 7, count: 32))

let targets: [String: (UnsafeRawBufferPointer) -> Void] = [
    // A tree object's plaintext (TTR1 and TTR2).
    "tree": { data in _ = try? TreeCodec.decode(Array(data), name: "fuzz") },
    // An index object's plaintext.
    "index": { data in _ = try? IndexFile.decode(Array(data), name: "fuzz") },
    // A whole pack as stored (trailer, header length, authentication), then the input as a pack
    // header's plaintext sealed under the tenant key (what openHeader parses after opening).
    "pack": { data in
        let bytes = Array(data)
        _ = try? PackFormat.readHeader(bytes, keys: tenantKeys, name: "fuzz")
        let gcm = try! AESGCM(key: tenantKeys.encryption)
        _ = try? PackFormat.openHeader(gcm.seal(bytes, aad: PackFormat.headerAAD), keys: tenantKeys, name: "fuzz")
    },
    // A WAL object as stored; then the first 54 bytes as a header and the rest as a payload
    // sealed with that header as associated data, so open() goes on to the decompression and the
    // length and hash checks.
    "wal": { data in
        let bytes = Array(data)
        _ = try? WALObject.header(bytes, name: "fuzz")
        _ = try? WALObject.open(bytes, name: "fuzz", keys: tenantKeys.wal)
        guard bytes.count >= WALObject.headerSize else { return }
        let header = Array(bytes[0..<WALObject.headerSize])
        let gcm = try! AESGCM(key: tenantKeys.wal.encryption)
        let object = header + gcm.seal(Array(bytes[WALObject.headerSize...]), aad: header + Array("fuzz".utf8))
        _ = try? WALObject.open(object, name: "fuzz", keys: tenantKeys.wal)
    },
    // An S3 answer, read the way S3Store reads listings, errors and multipart answers.
    "s3xml": { data in
        let text = String(decoding: data, as: UTF8.self)
        for item in S3XML.blocks("Contents", in: text[...]) {
            _ = S3XML.value("Key", in: item)
            _ = S3XML.value("Size", in: item).flatMap(Int.init)
        }
        for upload in S3XML.blocks("Upload", in: text[...]) {
            _ = S3XML.value("UploadId", in: upload)
        }
        for name in ["Code", "Message", "IsTruncated", "NextContinuationToken", "UploadId"] {
            _ = S3XML.value(name, in: text)
        }
    },
    // A base backup's tar stream, fed in pieces whose sizes the first byte chooses. Every
    // 512-byte block with the ustar magic gets its checksum set right, so that mutations reach
    // the fields behind the checksum.
    "tar": { data in
        guard let first = data.first else { return }
        let step = Int(first) * 7 + 1
        var bytes = Array(data.dropFirst())
        var block = 0
        while block + 512 <= bytes.count {
            if bytes[(block + 257)..<(block + 262)].elementsEqual("ustar".utf8) {
                var sum = 0
                for i in 0..<512 { sum += (148..<156).contains(i) ? 32 : Int(bytes[block + i]) }
                let octal = Array(String(format: "%06o", sum).utf8) + [0, 32]
                bytes.replaceSubrange((block + 148)..<(block + 156), with: octal)
            }
            block += 512
        }
        var reader = TarReader()
        var off = 0
        do {
            try bytes.withUnsafeBytes { all in
                while off < all.count {
                    let n = min(step, all.count - off)
                    try reader.feed(UnsafeRawBufferPointer(rebasing: all[off..<off + n])) { _ in }
                    off += n
                }
            }
        } catch {}
    },
    // One line of the evidence log.
    "evidence": { data in
        let line = Array(data)[...]
        if case .success(let parts) = EvidenceLine.split(line) { _ = EvidenceLine.parseRecord(parts.record) }
        _ = EvidenceLine.parseRecord(line)
    },
    // A WAL segment (or its first part); the segment's start LSN from the first 4 bytes, as a
    // segment number, the way WAL file names give it.
    "walrecords": { data in
        _ = WALRecords.systemIdentifier(data)
        guard data.count >= 4 else { return }
        let seg = UInt64(data.loadUnaligned(as: UInt32.self))
        let rest = Array(data[4...])
        _ = WALRecords.lastRecordStart(rest, start: seg * UInt64(WALName.segmentSize), length: rest.count)
    },
]

// MARK: seeds

/// Seed inputs made from a real repository (fuzz.sh creates it with the tresor binary): tree
/// streams and index objects as decrypted, pack headers (the whole stored pack when small, and
/// its header's plaintext), and WAL objects as header ‖ decrypted payload.
/// Seeds are cut to this many bytes (fuzz.sh runs with the same -max_len).
let seedMax = 1 << 16

func writeSeeds(out: URL, store storePath: String, tenant: String, master: String, policies: String) throws {
    let store = try LocalStore(root: URL(fileURLWithPath: storePath), create: false)
    let key = try MasterKey(text: String(contentsOfFile: master, encoding: .utf8))
    let policy = try Policy.load(directory: URL(fileURLWithPath: policies))
    let repo = try TenantRepository.open(store: store, tenant: tenant, master: key, policy: policy.backup, clock: SystemClock(), create: false)
    var counts: [String: Int] = [:]
    func seed(_ target: String, _ bytes: [UInt8]) throws {
        let dir = out.appendingPathComponent(target)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        counts[target, default: 0] += 1
        try Data(bytes.prefix(seedMax)).write(to: dir.appendingPathComponent("real-\(counts[target]!)"))
    }
    let index = try repo.loadIndex()
    for (_, manifest) in try repo.snapshots() {
        try seed("tree", TreeCodec.encode(try repo.loadTree(manifest, index: index)))
    }
    let layout = RepositoryLayout(tenant: tenant)
    for o in try store.list(prefix: layout.indexPrefix) {
        try seed("index", try repo.readIndexObject(o.key).encode())
    }
    for o in try store.list(prefix: layout.packsPrefix).prefix(20) {
        let pack = try store.get(o.key)
        if pack.count <= seedMax { try seed("pack", pack) }
        var w = ByteWriter()
        w.raw(PackFormat.headerMagic)
        let entries = try PackFormat.readHeader(pack, keys: repo.keys, name: o.key)
        w.varint(entries.count)
        for e in entries { e.encode(into: &w) }
        try seed("pack", w.bytes)
    }
    // WAL objects sealed by the code wal-push uses, from WAL files given as paths (a segment
    // initdb wrote, a history file): as stored, and as header ‖ decrypted payload.
    let gcm = try AESGCM(key: tenantKeys.wal.encryption)
    for path in (ProcessInfo.processInfo.environment["TRESOR_FUZZ_WALFILES"] ?? "").split(separator: ":") {
        let plain = Array(try Data(contentsOf: URL(fileURLWithPath: String(path))))
        let name = String(path.split(separator: "/").last!)
        let object = try plain.withUnsafeBytes { try WALObject.seal($0, name: name, keys: tenantKeys.wal, level: 3, pushedAt: Date()) }
        try seed("wal", object)
        let header = Array(object[0..<WALObject.headerSize])
        try seed("wal", header + (try gcm.open(Array(object[WALObject.headerSize...]), aad: header + Array(name.utf8))))
    }
    FileHandle.standardError.write(Data("seeds: \(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\n".utf8))
}

// MARK: entry point

/// libFuzzer's driver: parses its command line and calls `callback` for every input.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// What libFuzzer's own main (linked in too, but not the entry point here) refers to.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

let env = ProcessInfo.processInfo.environment
// With TRESOR_FUZZ_SEEDS=DIR (and TRESOR_FUZZ_STORE, TRESOR_FUZZ_TENANT, TRESOR_FUZZ_MASTER,
// TRESOR_FUZZ_POLICIES): write seeds from a real repository into DIR/<target>/ and exit.
if let out = env["TRESOR_FUZZ_SEEDS"] {
    do {
        try writeSeeds(out: URL(fileURLWithPath: out), store: env["TRESOR_FUZZ_STORE"] ?? "", tenant: env["TRESOR_FUZZ_TENANT"] ?? "",
                       master: env["TRESOR_FUZZ_MASTER"] ?? "", policies: env["TRESOR_FUZZ_POLICIES"] ?? "")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("seeds: \(error)\n".utf8))
        exit(1)
    }
}
guard let chosen = targets[env["TRESOR_FUZZ_TARGET"] ?? ""] else {
    FileHandle.standardError.write(Data("TRESOR_FUZZ_TARGET must be one of: \(targets.keys.sorted().joined(separator: " "))\n".utf8))
    exit(2)
}
let target = chosen
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in fuzzOne(data, count) })
