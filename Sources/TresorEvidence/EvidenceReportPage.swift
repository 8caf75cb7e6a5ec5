import Foundation
import Mustache
import TresorCore

/// Renders an ``EvidenceReport`` as one self-contained HTML page: inline CSS, inline SVG, no
/// scripts, fonts or images from anywhere, so it opens offline and can be archived as is.
///
/// The page is a Mustache template (``EvidenceReportTemplate``) over plain view values built here.
/// Every value goes through Mustache's `{{…}}`, which HTML-escapes it; the template never uses the
/// unescaped forms (`{{{…}}}`, `{{&…}}`), and a test checks that it does not.
public enum EvidenceReportPage {
    public static func render(_ report: EvidenceReport) throws -> String {
        let template = try MustacheTemplate(string: EvidenceReportTemplate.text)
        return template.render(View(report))
    }

    // MARK: view values (what the template sees)

    struct Cell {
        var cls: String
        var text: String
        var title: String
    }

    struct Point {
        var x: String
        var y: String
        var cls: String
        var title: String
    }

    struct Spark {
        var points: String
        var dots: [Point]
        var refY: String
        var label: String
        /// The slowest restore of the 12 months, printed next to the line as its scale.
        var peak: String
        var peakClass: String
    }

    struct TenantRow {
        var name: String
        var rowClass: String
        var stateClass: String
        var stateLabel: String
        var lastPass: String
        var age: String
        var cells: [Cell]
        var spark: Spark?
    }

    struct CheckView {
        var name: String
        var statusLabel: String
        var reason: String
    }

    struct DrillRow {
        var seq: String
        var time: String
        var tenant: String
        var target: String
        var resultClass: String
        var resultLabel: String
        var rto: String
        var rtoClass: String
        var rpo: String
        var rpoClass: String
        var restored: String
        var split: String
        var problems: [CheckView]
        /// Stored, not computed: Mustache reads values through `Mirror`, which sees stored ones only.
        var hasProblems: Bool
        var versions: String
    }

    struct ControlRow {
        var control: String
        var clauses: [String]
        var evidence: String
        var statusClass: String
        var statusLabel: String
    }

    struct Card {
        var label: String
        var value: String
        var detail: String
        var cls: String
    }

    struct InvalidRow {
        var seq: String
        var reason: String
    }

    struct View {
        var monthName: String
        var monthText: String
        var generatedAt: String
        var asOf: String
        var chainIntact: Bool
        var chainSummary: String
        var chainProblem: String?
        var fingerprint: String
        var headHash: String
        var headSeq: String
        var cards: [Card]
        var months: [String]
        var tenants: [TenantRow]
        var noTenants: Bool
        var drills: [DrillRow]
        var noDrills: Bool
        var controls: [ControlRow]
        var invalid: [InvalidRow]
        var hasInvalid: Bool
        var maxAge: String
        var promiseRTO: String
        var promiseTypical: String
        var promiseShare: String
        var promiseRPO: String

        init(_ r: EvidenceReport) {
            let p = r.promises
            monthName = r.month.name
            monthText = r.month.text
            generatedAt = Format.time(r.generatedAt)
            asOf = Format.time(r.asOf)
            let v = r.verification
            chainIntact = v.intact
            chainSummary =
                "\(v.verifiedRecords) records verified"
                + (v.keys.count > 1 ? ", following \(v.keys.count - 1) key rotation\(v.keys.count > 2 ? "s" : "")" : "")
            if let bad = v.firstBad {
                chainProblem =
                    "Record at line \(bad.line)\(bad.seq.map { " (seq \($0))" } ?? "") fails verification: \(bad.reason). Nothing after it is shown or trusted."
            } else if v.tornTailBytes > 0 {
                chainProblem = "\(v.tornTailBytes) bytes of a write torn by a crash follow the last record; every complete record verified."
            }
            fingerprint = r.keyFingerprint
            headHash = v.headHash ?? "none"
            headSeq = v.headSeq.map(String.init) ?? "none"
            maxAge = Format.duration(p.maxAge)
            promiseRTO = Format.duration(p.rto)
            promiseTypical = Format.duration(p.rtoTypical)
            promiseShare = "\(p.rtoTypicalSharePercent) %"
            promiseRPO = Format.duration(p.rpo)

            let f = r.figures
            let late = r.statuses.filter { $0.state != .ok }
            let share = f.withinTypicalPercent
            let shareOK = share.map { $0 > Double(p.rtoTypicalSharePercent) } ?? false
            cards = [
                Card(
                    label: "Drills in \(r.month.shortName)", value: "\(f.drills)",
                    detail: "\(f.passed) passed · \(f.failed) failed", cls: f.failed > 0 ? "warn" : (f.drills > 0 ? "good" : "neutral")),
                Card(
                    label: "Tenants overdue", value: "\(late.count) of \(r.statuses.count)",
                    detail: "no passing drill within \(Format.duration(p.maxAge))", cls: late.isEmpty ? "good" : "bad"),
                Card(
                    label: "Slowest restore (RTO)", value: f.rtoMaxMs.map(Format.millis) ?? "–",
                    detail: "promised within \(Format.duration(p.rto)); median \(f.rtoMedianMs.map(Format.millis) ?? "–")",
                    cls: f.drills == 0 ? "neutral" : (f.rtoBreaches == 0 ? "good" : "bad")),
                Card(
                    label: "Restores within \(Format.duration(p.rtoTypical))",
                    value: share.map { String(format: "%.0f %%", $0) } ?? "–",
                    detail: "\(f.withinTypical) of \(f.drills); promised over \(p.rtoTypicalSharePercent) %",
                    cls: share == nil ? "neutral" : (shareOK ? "good" : "bad")),
                Card(
                    label: "Largest data loss (RPO)", value: f.rpoMaxMs.map(Format.millis) ?? "–",
                    detail: "\(Format.count(f.latestTargetDrills, "drill")) to the latest point; promised under \(Format.duration(p.rpo))",
                    cls: f.rpoMaxMs == nil ? "neutral" : (f.rpoBreaches == 0 ? "good" : "bad")),
            ]

            let shown = r.shownMonths
            months = shown.map { $0.month == 1 || $0 == shown[0] ? "\($0.shortName) \($0.year % 100)" : $0.shortName }
            var rows: [TenantRow] = []
            for s in r.statuses {
                rows.append(Self.row(r, tenant: s.tenant, status: s, months: shown))
            }
            for t in r.formerTenants {
                rows.append(Self.row(r, tenant: t, status: nil, months: shown))
            }
            tenants = rows
            noTenants = rows.isEmpty

            let monthDrills = r.history.entries.filter { r.month.contains($0.time) && $0.time <= r.asOf }
            drills = monthDrills.map { Self.drillRow($0, promises: p) }
            noDrills = drills.isEmpty

            let tested = Set(monthDrills.filter(\.isPassingRestoreTest).map(\.tenant))
            let active = r.statuses.map(\.tenant)
            let untested = active.filter { !tested.contains($0) }
            let lastControl = r.history.controls.last { $0.time <= r.asOf }
            let controlText =
                lastControl.map { c in
                    "Last control check: record \(c.seq), \(Format.time(c.time)), result \(c.payload["result"]?.stringValue ?? "unknown")."
                } ?? "No control check recorded up to \(Format.time(r.asOf)) (tresor drill status records one)."
            controls = [
                ControlRow(
                    control: "Monthly restore test of every active tenant",
                    clauses: ["Service terms: monthly restore test", "ISO/IEC 27001:2022 A.8.13 Information backup"],
                    evidence: "\(active.count - untested.count) of \(active.count) active tenants passed a restore drill in \(r.month.name)"
                        + (untested.isEmpty ? "." : "; not yet: \(untested.joined(separator: ", "))."),
                    statusClass: untested.isEmpty ? "pass" : "fail", statusLabel: untested.isEmpty ? "Met" : "Not met"),
                ControlRow(
                    control: "No tenant's last passing restore test older than \(Format.duration(p.maxAge))",
                    clauses: ["Service terms: 30-day control", "ISO/IEC 27001:2022 A.8.13 Information backup"],
                    evidence: (late.isEmpty ? "No tenant overdue" : "Overdue: \(late.map(\.tenant).joined(separator: ", "))")
                        + " as of \(Format.time(r.asOf)). " + controlText,
                    statusClass: late.isEmpty ? "pass" : "fail", statusLabel: late.isEmpty ? "Met" : "Not met"),
                ControlRow(
                    control: "Restores within \(Format.duration(p.rto)), over \(p.rtoTypicalSharePercent) % within \(Format.duration(p.rtoTypical))",
                    clauses: ["SOC 2 A1.2 Recovery infrastructure and backup", "Service terms: restore time"],
                    evidence: f.drills == 0
                        ? "No drills in \(r.month.name)."
                        : "\(f.rtoBreaches) of \(f.drills) drills over \(Format.duration(p.rto)) or without a usable database; \(f.withinTypical) of \(f.drills) within \(Format.duration(p.rtoTypical)).",
                    statusClass: f.drills == 0 ? "none" : (f.rtoBreaches == 0 && shareOK ? "pass" : "fail"),
                    statusLabel: f.drills == 0 ? "No data" : (f.rtoBreaches == 0 && shareOK ? "Met" : "Not met")),
                ControlRow(
                    control: "Data loss under \(Format.duration(p.rpo))",
                    clauses: ["SOC 2 A1.2 Recovery infrastructure and backup", "Service terms: data loss (RPO)"],
                    evidence: f.rpoMaxMs == nil
                        ? "No drill to the latest point in \(r.month.name)."
                        : "\(f.rpoBreaches) of \(Format.count(f.latestTargetDrills, "drill")) to the latest point at or over \(Format.duration(p.rpo)); largest \(Format.millis(f.rpoMaxMs!)).",
                    statusClass: f.rpoMaxMs == nil ? "none" : (f.rpoBreaches == 0 ? "pass" : "fail"),
                    statusLabel: f.rpoMaxMs == nil ? "No data" : (f.rpoBreaches == 0 ? "Met" : "Not met")),
                ControlRow(
                    control: "Integrity of this evidence",
                    clauses: ["Basis of every row above"],
                    evidence: "Hash-chained log signed with Ed25519; \(chainSummary)" + (v.intact ? "." : ": does not verify."),
                    statusClass: v.intact ? "pass" : "fail", statusLabel: v.intact ? "Verified" : "Broken"),
            ]
            invalid = r.history.invalid.map { InvalidRow(seq: String($0.seq), reason: $0.reason) }
            hasInvalid = !invalid.isEmpty
        }

        static func row(_ r: EvidenceReport, tenant: String, status: DrillControl.TenantStatus?, months: [EvidenceReport.Month]) -> TenantRow {
            var cells: [Cell] = []
            var monthly: [Int64?] = []
            for m in months {
                let ds = r.drills(of: tenant, in: m)
                let pass = ds.filter { $0.drill.result == .pass }.count
                let fail = ds.count - pass
                monthly.append(ds.compactMap(\.drill.rtoMs).max())
                if ds.isEmpty {
                    cells.append(Cell(cls: "none", text: "·", title: "\(m.name): no drill"))
                } else {
                    let text = [pass > 0 ? "✓\(pass > 1 ? "\(pass)" : "")" : nil, fail > 0 ? "✗\(fail > 1 ? "\(fail)" : "")" : nil]
                        .compactMap { $0 }.joined(separator: " ")
                    cells.append(
                        Cell(
                            cls: fail > 0 ? (pass > 0 ? "mixed" : "fail") : "pass", text: text,
                            title: "\(m.name): \(pass) passed, \(fail) failed"))
                }
            }
            let stateClass: String, stateLabel: String, rowClass: String
            switch status?.state {
            case .ok?: (stateClass, stateLabel, rowClass) = ("pass", "OK", "")
            case .overdue?: (stateClass, stateLabel, rowClass) = ("fail", "Overdue", "late")
            case .neverPassed?: (stateClass, stateLabel, rowClass) = ("fail", "Never passed", "late")
            case nil: (stateClass, stateLabel, rowClass) = ("none", "Not active", "former")
            }
            let lastPass = status?.lastPass ?? r.history.entries.last { $0.tenant == tenant && $0.isPassingRestoreTest && $0.time <= r.asOf }?.time
            return TenantRow(
                name: tenant, rowClass: rowClass, stateClass: stateClass, stateLabel: stateLabel,
                lastPass: lastPass.map(Format.day) ?? "never",
                age: status?.ageDays.map { "\($0) d" } ?? "–", cells: cells,
                spark: spark(monthly, promises: r.promises, months: months))
        }

        /// An inline SVG line of the worst RTO per month, with a dashed line at the typical
        /// promise; nil when no month has a restore.
        static func spark(_ values: [Int64?], promises p: EvidenceReport.Promises, months: [EvidenceReport.Month]) -> Spark? {
            guard let top = values.compactMap({ $0 }).max() else { return nil }
            let typical = p.rtoTypical.seconds * 1000
            let scale = max(Double(top), typical) * 1.1
            let width = 132.0, height = 30.0, step = width / Double(max(values.count - 1, 1))
            func y(_ v: Double) -> Double { height - 3 - v / scale * (height - 6) }
            var dots: [Point] = []
            for (i, v) in values.enumerated() {
                guard let v else { continue }
                let cls = Double(v) > p.rto.seconds * 1000 ? "over" : (Double(v) > typical ? "slow" : "fast")
                dots.append(
                    Point(
                        x: String(format: "%.1f", Double(i) * step + 3), y: String(format: "%.1f", y(Double(v))),
                        cls: cls, title: "\(months[i].name): slowest restore \(Format.millis(v))"))
            }
            return Spark(
                points: dots.map { "\($0.x),\($0.y)" }.joined(separator: " "), dots: dots,
                refY: String(format: "%.1f", y(typical)),
                label: "Slowest restore per month over 12 months; dashed line: \(Format.duration(p.rtoTypical))",
                peak: Format.millis(top), peakClass: Double(top) > p.rto.seconds * 1000 ? "bad" : "")
        }

        static func drillRow(_ e: DrillHistory.Entry, promises p: EvidenceReport.Promises) -> DrillRow {
            let d = e.drill
            var target = d.target.kind.rawValue
            if let t = d.target.time, let date = TimeFormat.parse(t) { target += " · " + Format.time(date) }
            if let lsn = d.target.lsn { target += " · LSN " + lsn }
            if let seed = d.seed { target += " · seed \(seed)" }
            let rtoClass = d.rtoMs.map { Double($0) > p.rto.seconds * 1000 ? "bad" : (Double($0) > p.rtoTypical.seconds * 1000 ? "warn" : "") } ?? "bad"
            let problems = d.checks.filter { $0.status != .passed }.map {
                CheckView(name: $0.name, statusLabel: $0.status == .failed ? "failed" : "not run", reason: $0.reason ?? "")
            }
            let rpoClass = d.rpoMs.map { Double($0) >= p.rpo.seconds * 1000 ? "bad" : "" } ?? ""
            return DrillRow(
                seq: String(e.seq), time: Format.time(e.time), tenant: e.tenant, target: target,
                resultClass: d.selfTest ? "none" : (d.result == .pass ? "pass" : "fail"),
                resultLabel: (d.selfTest ? "Self-test " : "") + (d.result == .pass ? "pass" : "fail"),
                rto: d.rtoMs.map(Format.millis) ?? "no usable database", rtoClass: rtoClass,
                rpo: d.rpoMs.map(Format.millis) ?? "–", rpoClass: rpoClass,
                restored: "\(Format.bytes(d.bytesRestored)) · \(Format.count(Int(d.filesRestored), "file"))",
                split:
                    "restore \(Format.millis(d.timings.restoreMs)) · recovery \(Format.millis(d.timings.recoveryMs)) · checks \(Format.millis(d.timings.checksMs))",
                problems: problems, hasProblems: !problems.isEmpty,
                versions: "Tresor \(d.tresorVersion) · PostgreSQL \(d.postgresVersion) · drill \(d.drillID)")
        }
    }
}

/// How the report writes times, durations and sizes.
enum Format {
    static func time(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return f.string(from: d)
    }

    static func day(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: d)
    }

    static func millis(_ ms: Int64) -> String {
        if ms < 1000 { return "\(ms) ms" }
        let s = ms / 1000
        if s < 60 { return String(format: "%.1f s", Double(ms) / 1000) }
        if s < 3600 { return "\(s / 60) min \(String(format: "%02d", s % 60)) s" }
        return "\(s / 3600) h \(String(format: "%02d", (s % 3600) / 60)) min"
    }

    static func duration(_ d: PolicyDuration) -> String {
        let s = Int64(d.seconds)
        switch s {
        case let x where x % 86400 == 0: return "\(x / 86400) days"
        case let x where x % 3600 == 0: return x == 3600 ? "1 hour" : "\(x / 3600) hours"
        case let x where x % 60 == 0: return x == 60 ? "1 minute" : "\(x / 60) minutes"
        default: return "\(s) s"
        }
    }

    /// `1 drill`, `2 drills`.
    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 {
            v /= 1024
            i += 1
        }
        return i == 0 ? "\(n) B" : "\(String(format: "%.1f", v)) \(units[i])"
    }
}
