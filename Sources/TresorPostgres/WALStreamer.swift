import Foundation
import TresorCore

/// `tresor pg stream`: receives WAL over the streaming replication protocol, as a standby would,
/// and stores it in the tenant's WAL archive, so that a crash of the primary loses at most the
/// flush interval of committed work instead of up to `archive_timeout`.
///
/// The protocol (PostgreSQL's "Streaming Replication Protocol"), on a `replication=true`
/// connection:
/// 1. `IDENTIFY_SYSTEM`: the system identifier, the current timeline and WAL flush position.
/// 2. `READ_REPLICATION_SLOT` / `CREATE_REPLICATION_SLOT … PHYSICAL (RESERVE_WAL)`: a physical
///    slot, so the server keeps every segment this process has not confirmed, even while it is
///    down or disconnected.
/// 3. `START_REPLICATION SLOT s PHYSICAL X/X TIMELINE t` switches to COPY BOTH. The server sends
///    `w` messages (XLogData: start LSN, end LSN, send time, WAL bytes) and `k` keepalives (end
///    LSN, send time, reply requested); the client sends `r` standby status updates (written,
///    flushed and applied LSNs, its clock, reply requested).
///
/// The rules:
/// - **Never confirm what is not stored.** The flushed LSN sent to the server (which advances the
///   slot and lets it recycle WAL) is only ever a position up to which the WAL is durably in the
///   store: a whole segment pushed through ``WALArchive/push(_:name:)`` or the received part of
///   the current one stored as its `.streaming` object (``WALArchive/storeStreamed(_:segment:)``).
/// - **Flush interval.** Received WAL is stored at the latest `flushInterval` after its first
///   byte arrived, and at once when the connection drops or a stop is requested.
/// - **Reconnects.** A lost connection is retried with backoff (1 s doubling to 30 s). Streaming
///   resumes where the buffer ends when the server is on the same timeline, otherwise at the
///   start of the first segment the store lacks.
/// - **Next to `archive_command`.** A whole segment goes through the same duplicate rule as
///   `wal-push`: when `archive_command` stored it first the push finds identical content and
///   stores nothing, and the same holds the other way round. Streamed segments are byte-identical
///   to the server's files because a walsender sends only WAL the server flushed, read from those
///   files.
public final class WALStreamer {
    public struct Settings: Sendable {
        public var slot: String
        public var flushInterval: Double
        public var statusInterval: Double
        public var maxBackoff: Double

        public init(slot: String, flushInterval: Double, statusInterval: Double, maxBackoff: Double = 30) {
            self.slot = slot
            self.flushInterval = flushInterval
            self.statusInterval = statusInterval
            self.maxBackoff = maxBackoff
        }
    }

    /// What the streamer reports as it goes (one line each on the command line).
    public enum Event: Sendable {
        case connected(systemID: String, timeline: UInt32, start: UInt64, slot: String, createdSlot: Bool)
        case segment(name: String, result: WALArchive.PushResult)
        /// The archive holds this segment with other content; the archived copy was kept.
        case conflict(name: String)
        case disconnected(reason: String, retryIn: Double)
        case stopped(Stats)
    }

    /// Totals of one run.
    public struct Stats: Sendable, Codable {
        public var bytesReceived: UInt64 = 0
        public var segmentsStored = 0
        public var segmentsAlreadyArchived = 0
        public var conflicts = 0
        public var partialStores = 0
        public var connections = 0
        /// The LSN up to which WAL is stored (and confirmed to the server).
        public var storedLSN = "0/0"
        public var timeline: UInt32 = 0
    }

    private let dsn: String
    private let archive: WALArchive
    private let settings: Settings
    private let log: (Event) -> Void
    private let shouldStop: () -> Bool

    private var buffer: SegmentBuffer?
    /// Everything before this LSN (on the buffer's timeline) is durably stored.
    private var stored: UInt64 = 0
    /// Monotonic time the first byte not yet stored arrived.
    private var unstoredSince: Double?
    private var lastStatus = 0.0
    /// The flushed LSN last sent, and the least one to send on this connection.
    private var confirmed: UInt64 = 0
    private var confirmFloor: UInt64 = 0
    private var stats = Stats()

    public init(dsn: String, archive: WALArchive, settings: Settings, log: @escaping (Event) -> Void, shouldStop: @escaping () -> Bool) {
        self.dsn = dsn
        self.archive = archive
        self.settings = settings
        self.log = log
        self.shouldStop = shouldStop
    }

    /// Streams until a stop is requested, reconnecting whenever the connection is lost. Returns
    /// the totals after storing everything received.
    public func run() throws -> Stats {
        var backoff = 1.0
        while !shouldStop() {
            var reason: String
            do {
                let streamed = try session()
                reason = "the server ended streaming"
                if streamed { backoff = 1 }
            } catch {
                reason = "\(error)"
            }
            // Whatever arrived before the connection dropped is WAL the server had flushed:
            // store it now, not at the next interval.
            do {
                try storeReceived()
            } catch {
                reason += "; storing the received wal failed (kept in memory, retried): \(error)"
            }
            if shouldStop() { break }
            log(.disconnected(reason: reason, retryIn: backoff))
            let until = monotonicSeconds() + backoff
            while monotonicSeconds() < until && !shouldStop() { Thread.sleep(forTimeInterval: 0.1) }
            backoff = min(backoff * 2, settings.maxBackoff)
        }
        try storeReceived()
        stats.storedLSN = LSN.format(stored)
        log(.stopped(stats))
        return stats
    }

    /// One connection: identify, slot, start, stream until the server ends the copy or a stop is
    /// requested. Returns whether any WAL arrived.
    private func session() throws -> Bool {
        let conn = try PGConnection(dsn: dsn, mode: .physicalReplication, applicationName: "tresor-stream")
        guard let ident = try conn.query("IDENTIFY_SYSTEM").first, ident.count >= 3,
            let systemID = ident[0], let tliText = ident[1], let timeline = UInt32(tliText),
            let xlogText = ident[2], let serverFlush = LSN.parse(xlogText)
        else {
            throw PostgresError(.server, "IDENTIFY_SYSTEM returned an unexpected row")
        }
        let quotedSlot = "\"" + settings.slot.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        var createdSlot = false
        func readSlot() throws -> (type: String, restart: UInt64?)? {
            guard let row = try conn.query("READ_REPLICATION_SLOT \(quotedSlot)").first, row.count >= 3, let type = row[0] else { return nil }
            // The restart point counts only on the server's current timeline.
            let restart = row[2].flatMap { UInt32($0) } == timeline ? row[1].flatMap(LSN.parse) : nil
            return (type, restart)
        }
        var slotState = try readSlot()
        if slotState == nil {
            try conn.query("CREATE_REPLICATION_SLOT \(quotedSlot) PHYSICAL (RESERVE_WAL)")
            createdSlot = true
            slotState = try readSlot()
        }
        guard let slotState, slotState.type == "physical" else {
            throw PostgresError(.usage, "replication slot \(settings.slot) is not a physical slot", hint: "pass a physical slot with --slot")
        }
        let slotRestart = slotState.restart

        let start = try startPosition(timeline: timeline, serverFlush: serverFlush, slotRestart: slotRestart)
        // Confirming less than the slot already holds would move it back; the server kept
        // nothing older for us anyway.
        confirmFloor = slotRestart ?? 0
        if buffer == nil || buffer!.segment.timeline != timeline || buffer!.position != start {
            try storeReceived()
            buffer = try SegmentBuffer(startingAt: start, timeline: timeline)
            stored = start
        }
        stats.timeline = timeline
        stats.connections += 1
        log(.connected(systemID: systemID, timeline: timeline, start: start, slot: settings.slot, createdSlot: createdSlot))
        try conn.startCopyBoth("START_REPLICATION SLOT \(quotedSlot) PHYSICAL \(LSN.format(start)) TIMELINE \(timeline)")
        try sendStatus(conn, replyRequested: false)

        var any = false
        while !shouldStop() {
            let now = monotonicSeconds()
            var wait = min(0.5, max(0, lastStatus + settings.statusInterval - now))
            if let since = unstoredSince { wait = min(wait, max(0, since + settings.flushInterval - now)) }
            var replyRequested = false
            let read = try conn.readCopy(timeout: wait) { message in
                guard let kind = message.first else { return }
                switch kind {
                case UInt8(ascii: "w"):
                    guard message.count >= 25 else { throw PostgresError(.server, "short XLogData message") }
                    let at = bigEndianU64(message, 1)
                    let data = UnsafeRawBufferPointer(rebasing: message[25...])
                    try receive(data, at: at)
                    any = any || !data.isEmpty
                case UInt8(ascii: "k"):
                    guard message.count >= 18 else { throw PostgresError(.server, "short keepalive message") }
                    replyRequested = message[17] != 0
                default:
                    break
                }
            }
            if read == .ended {
                _ = try conn.resultsAfterCopy()
                return any
            }
            let after = monotonicSeconds()
            if let since = unstoredSince, after - since >= settings.flushInterval {
                try storeReceived()
            }
            if replyRequested || stored > confirmed || after - lastStatus >= settings.statusInterval {
                try sendStatus(conn, replyRequested: false)
            }
        }
        try storeReceived()
        try sendStatus(conn, replyRequested: false)
        return any
    }

    /// Where streaming starts on `timeline`: where the buffer ends when it is on that timeline and
    /// the server has it; else the start of the first segment the store lacks (a segment stored
    /// only in part is streamed again from its start), but never before the slot's restart point
    /// (the server may have recycled what is older) nor after the server's flush position.
    private func startPosition(timeline: UInt32, serverFlush: UInt64, slotRestart: UInt64?) throws -> UInt64 {
        let segment = WALName.segmentSize
        if let b = buffer, b.segment.timeline == timeline, b.position <= serverFlush {
            // Continuing mid-segment is fine: the buffer holds the segment's start.
            return b.position
        }
        let onTimeline = try archive.list().filter { $0.name.timeline == timeline }
        var start: UInt64? = nil
        if let lastWhole = onTimeline.filter({ $0.name.kind == .segment }).map(\.name.segment).max() {
            start = (lastWhole + 1) * segment
        }
        if let lastStreamed = onTimeline.filter({ $0.name.kind == .streaming }).map(\.name.segment).max(),
            lastStreamed * segment >= (start ?? 0)
        {
            start = lastStreamed * segment
        }
        let floor = (slotRestart ?? serverFlush) / segment * segment
        let ceiling = serverFlush / segment * segment
        return min(max(start ?? floor, floor), ceiling)
    }

    private func receive(_ data: UnsafeRawBufferPointer, at lsn: UInt64) throws {
        guard let buffer else { return }
        if !data.isEmpty && unstoredSince == nil { unstoredSince = monotonicSeconds() }
        try buffer.append(data, at: lsn) { name, whole in
            try storeWhole(name, whole)
        }
        stats.bytesReceived += UInt64(data.count)
    }

    /// Pushes a complete segment (the duplicate rule applies) and drops its `.streaming` object.
    private func storeWhole(_ name: WALName, _ whole: UnsafeRawBufferPointer) throws {
        do {
            let result = try archive.push(whole, name: name)
            if result == .stored { stats.segmentsStored += 1 } else { stats.segmentsAlreadyArchived += 1 }
            log(.segment(name: name.description, result: result))
        } catch let e as PostgresError where e.code == .conflict {
            // The archive already holds this name from the server itself (archive_command) or an
            // earlier run: keep it, say so, and move on rather than hold the slot's WAL forever.
            stats.conflicts += 1
            log(.conflict(name: name.description))
        }
        try archive.removeStreamed(segment: name)
        stored = name.next.startLSN
        unstoredSince = nil
    }

    /// Stores the received part of the current segment when it holds anything not yet stored.
    private func storeReceived() throws {
        guard let b = buffer, b.position > stored else {
            unstoredSince = nil
            return
        }
        if b.received > 0 {
            try archive.storeStreamed(b.bytes, segment: b.segment)
            stats.partialStores += 1
        }
        stored = b.position
        unstoredSince = nil
    }

    /// Sends a standby status update: received up to the buffer's end, flushed (stored) up to
    /// `stored`, nothing applied.
    private func sendStatus(_ conn: PGConnection, replyRequested: Bool) throws {
        let flushed = max(stored, confirmFloor)
        var m = [UInt8]()
        m.reserveCapacity(34)
        m.append(UInt8(ascii: "r"))
        appendBigEndian(&m, max(buffer?.position ?? stored, flushed))
        appendBigEndian(&m, flushed)
        appendBigEndian(&m, 0)
        appendBigEndian(&m, postgresMicroseconds(Date()))
        m.append(replyRequested ? 1 : 0)
        try conn.sendCopy(m)
        confirmed = stored
        lastStatus = monotonicSeconds()
    }
}

func bigEndianU64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(b[at + i]) }
    return v
}

func appendBigEndian(_ m: inout [UInt8], _ v: UInt64) {
    for i in (0..<8).reversed() { m.append(UInt8(truncatingIfNeeded: v >> (UInt64(i) * 8))) }
}

/// Microseconds since 2000-01-01 00:00 UTC, PostgreSQL's epoch for replication message times.
func postgresMicroseconds(_ d: Date) -> UInt64 {
    UInt64(max(0, (d.timeIntervalSince1970 - 946_684_800) * 1_000_000))
}
