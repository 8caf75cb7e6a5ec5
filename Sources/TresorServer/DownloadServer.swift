import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TresorCore
import TresorEngine

/// `tresor serve --listen HOST:PORT`: customers download their published exports
/// (`HOME/exports/T/FILE`) through signed links (``ExportLink``).
///
/// Routes (GET only; any other method or path gets 404):
/// - `/d/T/FILE?exp=..&id=..&sig=..`: for a browser (`Accept: text/html`) a page about the file
///   (``LinkPage``); with `download=1`, a `Range` header or any other `Accept`, the file itself,
///   with `Range` (one range: 206 and `Content-Range`; 416 when unsatisfiable), `ETag`,
///   `Content-Length`, `Repr-Digest` (RFC 9530) and `Accept-Ranges`.
/// - `/access-log/T/FILE?exp=..&id=..&sig=..`: the tenant's entries of the access log, as JSON lines.
///
/// A link that is not one (path tricks, unknown shape) gets 404; a forged, expired or revoked
/// link 403; a valid link to a file that is gone 404. The bodies say only "forbidden" or "not
/// found". Each tenant has at most the policy's `exports.max_concurrent_downloads` files in
/// flight (a download holds its slot until its last byte went to the socket, the client went
/// away, or the connection took no chunk for `exports.download_stall_timeout` and was closed by
/// ``StallWatchdog``); one more gets 429. Files are read in 1 MiB chunks without read-ahead
/// (``FileChunkReader``), each read only when the connection took the previous one
/// (``DownloadHandler/settle(_:)``), so a slow client holds at most about two chunks of the
/// server's memory.
public enum DownloadServer {
    /// Runs until SIGTERM or SIGINT. `announce` gets the bound address (`127.0.0.1:PORT`) once
    /// the server listens, which matters for port 0.
    public static func run(
        installation: Installation, host: String, port: Int,
        announce: @escaping @Sendable (String) -> Void
    ) throws {
        let retention = installation.policy.accessLog.retention.seconds
        try FileManager.default.createDirectory(
            at: installation.home.exports, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let pruned = try AccessLogFile.prune(installation.home, olderThan: installation.clock.now().addingTimeInterval(-retention))
        if pruned.unreadable > 0 {
            FileHandle.standardError.write(Data("warning: \(pruned.unreadable) lines of the access log have no readable time; kept, never pruned\n".utf8))
        }
        let handler = DownloadHandler(
            home: installation.home, clock: installation.clock,
            signer: try installation.exportLinkSigner(create: true),
            log: try AccessLog(home: installation.home),
            limiter: DownloadLimiter(limit: installation.policy.exports.maxConcurrentDownloads),
            stallTimeout: .nanoseconds(Int64(installation.policy.exports.downloadStallTimeout.seconds * 1e9)))
        // No router: every request, whatever its path or method, reaches the handler, which
        // answers and logs it (a router would answer unknown paths itself, unlogged).
        let responder = CallbackResponder<DownloadContext> { request, context in await handler.respond(request, context) }
        var logger = Logger(label: "tresor-serve")
        logger.logLevel = .warning
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname(host, port: port), serverName: "tresor"),
            onServerRunning: { channel in
                let bound = channel.localAddress
                announce("\(bound?.ipAddress ?? host):\(bound?.port ?? port)")
            },
            logger: logger)
        let failure = Locked<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await app.runService() } catch { failure.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let error = failure.current {
            throw CoreError.failed("the download server stopped: \(error)", hint: "is \(host):\(port) free and an address of this host?")
        }
    }
}

struct DownloadContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// The connection, for ``DownloadHandler/settle(_:)``.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }
}

/// Answers one request; see ``DownloadServer``.
struct DownloadHandler: Sendable {
    let home: Home
    let clock: any Clock
    let signer: ExportLinkSigner
    let log: AccessLog
    let limiter: DownloadLimiter
    /// How long a download may wait for its connection to take the next chunk
    /// (`exports.download_stall_timeout`); see ``StallWatchdog``.
    let stallTimeout: TimeAmount

    static let chunk = 1 << 20
    static let reprDigest = HTTPFields.Element.Name("Repr-Digest")!

    func respond(_ request: Request, _ context: DownloadContext) async -> Response {
        let now = clock.now()
        let raw = request.uri.description
        var entry = AccessEntry(
            time: AccessLog.timestamp(now), address: Self.describe(context.remoteAddress),
            tenant: "", file: "", link: "", route: "file", status: 0,
            range: request.headers[.range], bytes: 0, complete: false)
        guard request.method == .get, let link = ExportLink.parse(raw) else {
            return finish(&entry, .notFound)
        }
        entry.tenant = link.tenant.rawValue
        entry.file = link.file
        entry.link = link.id
        let query = request.uri.queryParameters
        if raw.hasPrefix("/access-log/") {
            entry.route = "access-log"
        } else if query["download"] != "1", request.headers[.range] == nil,
            request.headers[.accept]?.contains("text/html") == true
        {
            entry.route = "page"
        }
        guard signer.verify(link, now: now) == .valid else { return finish(&entry, .forbidden) }
        do {
            guard try !RevokedExportLinks.read(home).contains(link.id) else { return finish(&entry, .forbidden) }
        } catch {
            FileHandle.standardError.write(Data("error: cannot read the revoked links: \(error)\n".utf8))
            return finish(&entry, .internalServerError)
        }
        if entry.route == "access-log" {
            do {
                var body = ByteBuffer()
                for line in try log.lines(of: link.tenant) { body.writeBytes(line) }
                entry.bytes = Int64(body.readableBytes)
                entry.complete = true
                log.append(withStatus(entry, 200))
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: .init(byteBuffer: body))
            } catch {
                FileHandle.standardError.write(Data("error: cannot read the access log: \(error)\n".utf8))
                return finish(&entry, .internalServerError)
            }
        }
        let url = home.exports(of: link.tenant).appendingPathComponent(link.file)
        let digest: ExportDigest.Value
        do {
            guard FileManager.default.fileExists(atPath: url.path) else { return finish(&entry, .notFound) }
            digest = try await NIOThreadPool.singleton.runIfActive { try ExportDigest.of(url) }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            return finish(&entry, .notFound)
        }
        let etag = "\"\(digest.sha256)\""
        if entry.route == "page" { return page(link, digest, &entry) }

        var headers: HTTPFields = [
            .contentType: "application/octet-stream",
            .eTag: etag,
            .acceptRanges: "bytes",
            Self.reprDigest: "sha-256=:\(Data(ObjectID(hex: digest.sha256)!.bytes).base64EncodedString()):",
            .contentDisposition: "attachment; filename*=UTF-8''\(link.file.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "export")",
        ]
        var range = ByteRangeRequest.parse(request.headers[.range], size: digest.size)
        if let ifRange = request.headers[.ifRange], ifRange != etag { range = .full }
        let first: Int64, last: Int64, status: HTTPResponse.Status
        switch range {
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(digest.size)"
            entry.status = 416
            log.append(entry)
            return Response(status: .rangeNotSatisfiable, headers: headers)
        case .full:
            (first, last, status) = (0, digest.size - 1, .ok)
        case .partial(let f, let l):
            (first, last, status) = (f, l, .partialContent)
            headers[.contentRange] = "bytes \(f)-\(l)/\(digest.size)"
        }
        guard limiter.tryAcquire(link.tenant) else { return finish(&entry, .tooManyRequests) }
        let length = last - first + 1
        entry.status = Int(status.code)
        let start = entry
        let (log, limiter, tenant) = (self.log, self.limiter, link.tenant)
        let channel = context.channel
        let stallTimeout = self.stallTimeout
        let body = ResponseBody(contentLength: Int(length)) { writer in
            var e = start
            // A client that takes nothing for stallTimeout gets its connection closed, which makes
            // the write below throw, so the slot is freed even though the client never goes away.
            let watchdog = StallWatchdog(channel: channel, timeout: stallTimeout)
            // The slot is held until the last byte went to the socket or the connection failed.
            defer {
                watchdog.stop()
                limiter.release(tenant)
                log.append(e)
            }
            // A client that goes away makes write throw: the entry then records the bytes sent
            // and complete: false.
            let reader = try FileChunkReader(path: url.path, range: first..<(last + 1), chunk: Self.chunk)
            while let piece = try await reader.next() {
                try await writer.write(piece)
                e.bytes += Int64(piece.readableBytes)
                try await Self.settle(channel)
                watchdog.progressed()
            }
            e.complete = e.bytes == length
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Waits until the event loop has handed the chunks written so far to the socket.
    ///
    /// `writer.write` (NIO's `NIOAsyncChannelOutboundWriter`) returns as soon as the channel
    /// *was* writable: the chunk then goes to the event loop in a task of its own, and the
    /// channel turns unwritable (more than its 64 KiB high-water mark buffered) only once that
    /// task ran. Without this wait a writer faster than the event loop gets several chunks
    /// accepted before the first one turns the channel unwritable. A task submitted now runs
    /// after that write (one event loop runs its tasks in order), so when it returns the writer
    /// knows the channel's writability, and the next `write` waits while the socket is full.
    /// Each connection thus buffers at most one chunk plus the high-water mark, and one chunk
    /// waiting to be written, whatever the client's speed.
    static func settle(_ channel: any Channel) async throws {
        try await channel.eventLoop.submit {}.get()
    }

    private func page(_ link: ExportLink, _ digest: ExportDigest.Value, _ entry: inout AccessEntry) -> Response {
        let html = LinkPage.render(
            LinkPage.View(
                tenant: link.tenant.rawValue, file: link.file,
                size: digest.size < 1024 ? Self.humanSize(digest.size) : "\(Self.humanSize(digest.size)) (\(digest.size) bytes)",
                sha256: digest.sha256,
                expires: AccessLog.timestamp(Date(timeIntervalSince1970: Double(link.expires))),
                downloadURL: link.path + "&download=1", accessLogURL: link.accessLogPath))
        let body = ByteBuffer(string: html)
        entry.bytes = Int64(body.readableBytes)
        entry.complete = true
        log.append(withStatus(entry, 200))
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                HTTPFields.Element.Name("Content-Security-Policy")!: "default-src 'none'; style-src 'unsafe-inline'",
            ],
            body: .init(byteBuffer: body))
    }

    /// Logs a refusal and answers it with a one-word body.
    private func finish(_ entry: inout AccessEntry, _ status: HTTPResponse.Status) -> Response {
        entry.status = Int(status.code)
        entry.complete = true
        log.append(entry)
        let text: String
        switch status {
        case .forbidden: text = "forbidden\n"
        case .notFound: text = "not found\n"
        case .tooManyRequests: text = "too many downloads at once\n"
        default: text = "error\n"
        }
        return Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func withStatus(_ e: AccessEntry, _ status: Int) -> AccessEntry {
        var e = e
        e.status = status
        return e
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "" }
        return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
    }

    static func humanSize(_ n: Int64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) bytes" : "\(String(format: "%.1f", v)) \(units[i])"
    }
}

/// Closes a download's connection when it has taken no chunk for `timeout`: a client that stops
/// reading (or reads far too slowly) would otherwise hold its tenant's download slot, a file
/// descriptor and a chunk of memory until it disconnects, and a few such clients lock the tenant
/// out of its own downloads.
///
/// One repeated task on the connection's event loop checks, four times per `timeout`, how long
/// ago the download last made progress (``progressed()``, after each chunk the connection took);
/// a chunk costs one atomic store, no allocation. Closing the channel fails the write the
/// download is waiting in, so the download ends as an interrupted one (logged with the bytes
/// sent and `complete: false`) and frees its slot; the client can resume with a Range request.
final class StallWatchdog: Sendable {
    /// When the download last made progress (`NIODeadline` uptime nanoseconds).
    private final class LastProgress: Sendable {
        let time = Atomic<UInt64>(NIODeadline.now().uptimeNanoseconds)
    }

    private let last: LastProgress
    private let task: RepeatedTask

    init(channel: any Channel, timeout: TimeAmount) {
        let last = LastProgress()
        self.last = last
        let limit = UInt64(max(timeout.nanoseconds, 1))
        let period = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 1_000_000))
        task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { task in
            let now = NIODeadline.now().uptimeNanoseconds
            let since = last.time.load(ordering: .relaxed)
            if now > since, now - since >= limit {
                task.cancel()
                channel.close(mode: .all, promise: nil)
            }
        }
    }

    /// The connection took a chunk.
    func progressed() {
        last.time.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
    }

    func stop() { task.cancel() }
}
