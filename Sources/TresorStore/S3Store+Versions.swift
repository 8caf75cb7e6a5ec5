import Foundation
import TresorCore
import TresorCrypto

/// Bucket versioning (GetBucketVersioning, PutBucketVersioning), ListObjectVersions and
/// version-exact DeleteObjects, as AWS documents them. A versioned bucket keeps every
/// overwritten or deleted object as a noncurrent version, so "delete everything under a prefix"
/// there means deleting each version and each delete marker.
extension S3Store: ObjectVersions {
    public var versions: (any ObjectVersions)? { self }

    public func versioning() throws -> VersioningState {
        let r = try send("GET", key: nil, query: [("versioning", "")])
        guard r.status == 200 else { throw failure(r, "get versioning of bucket \(config.bucket)") }
        switch S3XML.value("Status", in: String(decoding: r.body, as: UTF8.self)) {
        case "Enabled": return .enabled
        case "Suspended": return .suspended
        case nil, "": return .off
        case let other?: throw StoreError(.io, "bucket \(config.bucket) in \(location) reports versioning status '\(other)'")
        }
    }

    /// Turns versioning on (`enabled`) or suspends it. Once enabled, a bucket can never go back
    /// to never having had it.
    public func setVersioning(enabled: Bool) throws {
        let xml =
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>\(enabled ? "Enabled" : "Suspended")</Status></VersioningConfiguration>"
        let body = Array(xml.utf8)
        let md5 = Data(MD5.digest(body)).base64EncodedString()
        let r = try body.withUnsafeBytes {
            try send("PUT", key: nil, query: [("versioning", "")], headers: [("content-md5", md5), ("content-type", "application/xml")], body: $0)
        }
        guard r.status == 200 else { throw failure(r, "set versioning of bucket \(config.bucket)") }
    }

    public func listVersions(prefix: String) throws -> [ObjectVersion] {
        let full = config.prefix.isEmpty ? prefix : config.prefix + "/" + prefix
        let strip = config.prefix.isEmpty ? 0 : config.prefix.count + 1
        var out: [ObjectVersion] = []
        var marker: (key: String, version: String?)?
        repeat {
            var query = [("versions", ""), ("prefix", full), ("max-keys", "\(listPageSize)")]
            if let marker {
                query.append(("key-marker", marker.key))
                if let v = marker.version { query.append(("version-id-marker", v)) }
            }
            let r = try send("GET", key: nil, query: query)
            guard r.status == 200 else { throw failure(r, "list versions \(prefix)") }
            let text = String(decoding: r.body, as: UTF8.self)[...]
            for (element, isMarker) in [("Version", false), ("DeleteMarker", true)] {
                for item in S3XML.blocks(element, in: text) {
                    guard let key = S3XML.value("Key", in: item), key.count >= strip,
                        let id = S3XML.value("VersionId", in: item)
                    else {
                        throw StoreError(.io, "list versions \(prefix) in \(location): an entry without a key or version id")
                    }
                    let size = isMarker ? 0 : (S3XML.value("Size", in: item).flatMap(Int.init) ?? 0)
                    out.append(ObjectVersion(key: String(key.dropFirst(strip)), versionID: id, isDeleteMarker: isMarker, size: size))
                }
            }
            if S3XML.value("IsTruncated", in: text) == "true" {
                guard let next = S3XML.value("NextKeyMarker", in: text), !next.isEmpty else {
                    throw StoreError(.io, "list versions \(prefix) in \(location): truncated answer without a next key marker")
                }
                marker = (next, S3XML.value("NextVersionIdMarker", in: text))
            } else {
                marker = nil
            }
        } while marker != nil
        out.sort { ($0.key, $0.versionID) < ($1.key, $1.versionID) }
        return out
    }

    public func deleteVersions(_ versions: [ObjectVersion]) throws {
        for v in versions { try validateStoreKey(v.key) }
        var start = 0
        while start < versions.count {
            let batch = versions[start..<min(versions.count, start + deleteBatchSize)]
            start += batch.count
            let text = try deleteObjects(
                batch.map { "<Key>\(S3XML.escape(objectKey($0.key)))</Key><VersionId>\(S3XML.escape($0.versionID))</VersionId>" },
                what: "delete \(batch.count) object versions")
            let errors = S3XML.blocks("Error", in: text).filter { !["NoSuchKey", "NoSuchVersion"].contains(S3XML.value("Code", in: $0)) }
            if let first = errors.first {
                throw StoreError(
                    .io,
                    "delete version \(S3XML.value("VersionId", in: first) ?? "?") of \(S3XML.value("Key", in: first) ?? "?") in \(location): \(S3XML.value("Code", in: first) ?? "error")"
                )
            }
        }
    }
}
