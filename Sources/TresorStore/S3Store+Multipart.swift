import Foundation
import TresorCore

extension S3Store {
    /// Uploads `bytes` in parts: CreateMultipartUpload, UploadPart for each slice (sequentially:
    /// the repository already runs several uploads at once), CompleteMultipartUpload. Any failure
    /// aborts the upload so no parts are left behind; uploads orphaned by a killed process are
    /// removed by ``abortIncompleteUploads(prefix:olderThan:)``.
    func putMultipart(_ key: String, bytes: UnsafeRawBufferPointer, sha256: String, ifAbsent: Bool) throws -> Bool {
        // An existing object makes the upload pointless; the complete request re-checks atomically.
        if ifAbsent, try head(key) != nil { return false }
        let uploadID = try createMultipartUpload(key, sha256: sha256)
        do {
            var etags: [String] = []
            var offset = 0
            while offset < bytes.count {
                let part = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + config.partSize)])
                let number = etags.count + 1
                let r = try send("PUT", key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)], body: part)
                guard r.status == 200, let etag = r.headers["etag"] else { throw failure(r, "upload part \(number) of \(key)") }
                etags.append(etag)
                offset += part.count
            }
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, etag) in etags.enumerated() {
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            var headers = [("content-type", "application/xml")]
            if ifAbsent { headers.append(("if-none-match", "*")) }
            let body = Array(xml.utf8)
            let r = try body.withUnsafeBytes { try send("POST", key: key, query: [("uploadId", uploadID)], headers: headers, body: $0) }
            if r.status == 412 && ifAbsent {
                abort(key: key, uploadID: uploadID)
                return false
            }
            // S3 may answer 200 and still report an error in the body.
            guard r.status == 200, !String(decoding: r.body.prefix(512), as: UTF8.self).contains("<Error>") else {
                throw failure(
                    HTTPResponse(status: r.status == 200 ? 500 : r.status, headers: r.headers, body: r.body),
                    "complete multipart upload of \(key)")
            }
            return true
        } catch {
            abort(key: key, uploadID: uploadID)
            throw error
        }
    }

    /// Starts a multipart upload and returns its id (CreateMultipartUpload). Public so tests can
    /// leave one behind the way a killed process would.
    public func createMultipartUpload(_ key: String, sha256: String? = nil) throws -> String {
        try validateStoreKey(key)
        let created = try send("POST", key: key, query: [("uploads", "")], headers: [Self.ownerACL] + (sha256.map { [("x-amz-meta-sha256", $0)] } ?? []))
        guard created.status == 200 else { throw failure(created, "start multipart upload of \(key)") }
        guard let uploadID = S3XML.value("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
            throw StoreError(.io, "start multipart upload of \(key) in \(location): no upload id in the answer")
        }
        return uploadID
    }

    /// Best effort: a failed abort leaves an upload that the next cleanup removes.
    private func abort(key: String, uploadID: String) {
        _ = try? send("DELETE", key: key, query: [("uploadId", uploadID)])
    }

    /// Aborts multipart uploads under `prefix` started at least `age` seconds ago (by the
    /// server's clock against this machine's); returns how many it aborted. An empty `prefix`
    /// covers the whole store (`tresor store clean`). With `age` above 0, an upload whose start
    /// time the server does not give is kept.
    public func abortIncompleteUploads(prefix: String, olderThan age: TimeInterval) throws -> Int {
        let full = config.prefix.isEmpty ? prefix : config.prefix + "/" + prefix
        let strip = config.prefix.isEmpty ? 0 : config.prefix.count + 1
        var aborted = 0
        var markers: (key: String, upload: String)? = nil
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let isoPlain = ISO8601DateFormatter()
        let now = SystemClock().now()
        repeat {
            var query = [("uploads", ""), ("prefix", full)]
            if let m = markers {
                query.append(("key-marker", m.key))
                query.append(("upload-id-marker", m.upload))
            }
            let r = try send("GET", key: nil, query: query)
            guard r.status == 200 else { throw failure(r, "list multipart uploads under \(prefix)") }
            let text = String(decoding: r.body, as: UTF8.self)[...]
            for upload in S3XML.blocks("Upload", in: text) {
                guard let key = S3XML.value("Key", in: upload), key.count > strip,
                    let id = S3XML.value("UploadId", in: upload)
                else { continue }
                let initiated = S3XML.value("Initiated", in: upload).flatMap { iso.date(from: $0) ?? isoPlain.date(from: $0) }
                // Age 0 means every upload; otherwise one of unknown age may be in flight and is
                // kept (it costs only space until its age can be told).
                let old = age <= 0 || initiated.map { now.timeIntervalSince($0) >= age } == true
                if !old { continue }
                let d = try send("DELETE", key: String(key.dropFirst(strip)), query: [("uploadId", id)])
                guard d.status == 204 || d.status == 200 || d.status == 404 else { throw failure(d, "abort upload of \(key)") }
                aborted += 1
            }
            if S3XML.value("IsTruncated", in: text) == "true",
                let k = S3XML.value("NextKeyMarker", in: text), let u = S3XML.value("NextUploadIdMarker", in: text)
            {
                markers = (k, u)
            } else {
                markers = nil
            }
        } while markers != nil
        return aborted
    }

    /// Multipart uploads in progress under `prefix` (keys relative to the store).
    public func incompleteUploads(prefix: String) throws -> [String] {
        let full = config.prefix.isEmpty ? prefix : config.prefix + "/" + prefix
        let strip = config.prefix.isEmpty ? 0 : config.prefix.count + 1
        let r = try send("GET", key: nil, query: [("uploads", ""), ("prefix", full)])
        guard r.status == 200 else { throw failure(r, "list multipart uploads under \(prefix)") }
        return S3XML.blocks("Upload", in: String(decoding: r.body, as: UTF8.self)[...])
            .compactMap { S3XML.value("Key", in: $0) }.map { String($0.dropFirst(strip)) }
    }
}
