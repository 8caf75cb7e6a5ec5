import Foundation

/// The one updating progress line of long work on standard error: files, bytes, throughput and,
/// when the total is known, the ETA. Written through ``Context/progress(_:)``, so nothing appears
/// when stderr is no terminal or with `--json`. Updates are at most every
/// `TRESOR_PROGRESS_INTERVAL_MS` milliseconds (default 200; the first one is always shown), so
/// a fast job does not spend its time redrawing.
final class ProgressLine: @unchecked Sendable {
    // @unchecked: the engine calls back from one thread at a time (the job's own).
    private let context: Context
    private let started = Date()
    private var lastDraw: Date?
    private let interval: TimeInterval

    init(_ context: Context) {
        self.context = context
        let ms = context.environment["TRESOR_PROGRESS_INTERVAL_MS"].flatMap(Double.init) ?? 200
        interval = ms / 1000
    }

    /// `bytes` of `totalBytes` (when known) done; `files` and `note` are shown when given.
    func update(bytes: UInt64, totalBytes: UInt64? = nil, files: Int? = nil, unit: String? = nil, note: String = "") {
        let now = Date()
        if let lastDraw, now.timeIntervalSince(lastDraw) < interval { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(bytes) / elapsed
        var parts: [String] = []
        if let files { parts.append("\(files) \(unit ?? "files")") }
        parts.append(totalBytes.map { "\(formatBytes(bytes)) of \(formatBytes($0))" } ?? formatBytes(bytes))
        parts.append("\(formatBytes(UInt64(rate)))/s")
        if let total = totalBytes, total > bytes, rate > 0 {
            parts.append("ETA \(Self.duration(Double(total - bytes) / rate))")
        }
        context.progress(parts.joined(separator: ", ") + (note.isEmpty ? "" : "  " + note))
    }

    /// `done` of `total` objects (when the job counts objects, not bytes), with their rate and ETA.
    func update(done: Int, total: Int, unit: String) {
        let now = Date()
        if let lastDraw, now.timeIntervalSince(lastDraw) < interval { return }
        lastDraw = now
        let rate = Double(done) / max(now.timeIntervalSince(started), 0.001)
        var text = "\(done)/\(total) \(unit), \(String(format: "%.1f", rate))/s"
        if total > done, rate > 0 { text += ", ETA \(Self.duration(Double(total - done) / rate))" }
        context.progress(text)
    }

    /// Clears the line, so what follows starts on a clean line.
    func end() { context.endProgress() }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded(.up))
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
