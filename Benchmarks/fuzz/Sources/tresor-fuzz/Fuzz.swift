import Foundation
@testable import TresorCore
@testable import TresorCrypto
@testable import TresorEvidence
@testable import TresorPostgres
@testable import TresorRepository
@testable import TresorStore

// One libFuzzer binary for every parser; TRESOR_FUZZ_TARGET names the one to run (fuzz.sh sets
// it). Every parser must answer malformed bytes with a thrown error or nil: a trap, a failed
// precondition or an out-of-bounds read is a crash that libFuzzer reports and saves.

/// Fixed keys: the fuzz inputs are sealed with them where a parser only sees authenticated bytes,
/// so the parsing behind the authentication is reached too.
let tenantKeys = TenantKeys(dataKey: [UInt8](repeating: 7, count: 32))

let target: (UnsafeRawBufferPointer) -> Void = {
    let name = ProcessInfo.processInfo.environment["TRESOR_FUZZ_TARGET"] ?? ""
    guard let t = targets[name] else {
        FileHandle.standardError.write(Data("TRESOR_FUZZ_TARGET must be one of: \(targets.keys.sorted().joined(separator: " "))\n".utf8))
        exit(2)
    }
    return t
}()

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
    // A base backup's tar stream, fed in pieces whose sizes the first byte chooses.
    "tar": { data in
        guard let first = data.first else { return }
        let step = Int(first) * 7 + 1
        var reader = TarReader()
        var off = 1
        do {
            while off < data.count {
                let n = min(step, data.count - off)
                try reader.feed(UnsafeRawBufferPointer(rebasing: data[off..<off + n])) { _ in }
                off += n
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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    target(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
