import Foundation
import TresorCore
import TresorEvidence

#if canImport(Glibc)
import Glibc
#endif

/// How a drill runs `pg_verifybackup` over a restored data directory: one process per core, each
/// on its own share of the backup's files, so the SHA-256 pass (one core's work in a single
/// process, on the critical path before the server may start) uses every core.
///
/// `pg_verifybackup --ignore PATH` leaves out PATH (a file, or a directory with everything under
/// it) on both sides: neither reported as missing (in the manifest, not on disk), nor as extra
/// (on disk, not in the manifest), nor checksummed. Each run ignores exactly the files of the
/// other shares, so together the runs still check every file the manifest lists (present, same
/// size, same SHA-256) and every extra file on disk: a directory is ignored by a run only when
/// every manifest file under it belongs to another share, and the run whose share has a file
/// there does not ignore it, so an extra file anywhere is seen by at least one run
/// (DrillVerifyBackupTests proves each kind of damage in each share is caught).
struct VerifyBackupPlan: Equatable {
    /// One entry per `pg_verifybackup` run: the paths (relative to the data directory) it ignores
    /// on top of the files a restore writes on purpose.
    var ignores: [[String]]

    /// A manifest file: its path relative to the data directory and its size.
    struct File: Equatable {
        var path: String
        var size: Int64
    }

    /// The files of a `backup_manifest` (its `Files` array), or nil when it cannot be read as
    /// one (then the drill runs a single `pg_verifybackup`, which reports the manifest itself).
    static func files(manifest: Data) -> [File]? {
        struct Manifest: Decodable {
            struct Entry: Decodable {
                var path: String
                var size: Int64
                enum CodingKeys: String, CodingKey {
                    case path = "Path"
                    case size = "Size"
                }
            }
            var files: [Entry]
            enum CodingKeys: String, CodingKey { case files = "Files" }
        }
        // Unreadable: pg_verifybackup, run once over everything, says what is wrong with it.
        guard let m = try? JSONDecoder().decode(Manifest.self, from: manifest) else { return nil }
        return m.files.map { File(path: $0.path, size: $0.size) }
    }

    /// The largest ignore list a run gets. `pg_verifybackup` compares every path it meets (on
    /// disk and in the manifest) with every ignored path in turn, so a huge list would cost more
    /// than the split saves; past it the drill runs one process over everything.
    static let maxComparisons = 50_000_000

    /// Splits `files` into `runs` shares of about equal bytes (largest first, each into the
    /// lightest share), and gives each run the ignore list that leaves out the other shares'
    /// files, as whole directories where a directory holds none of the run's own files. One run
    /// (no extra ignores) when there is a single core, fewer than two files, or the ignore lists
    /// would get too long.
    static func split(_ files: [File], runs: Int) -> VerifyBackupPlan {
        let n = min(runs, files.count)
        guard n > 1 else { return VerifyBackupPlan(ignores: [[]]) }
        var share = [Int](repeating: 0, count: files.count)
        for (run, dealt) in sharesBySize(files.map(\.size), count: n, before: { files[$0].path < files[$1].path }).enumerated() {
            for i in dealt { share[i] = run }
        }
        var ignores: [[String]] = []
        for run in 0..<n {
            // The directories that hold a file of this run's share: never ignored whole.
            var own = Set<Substring>()
            for i in files.indices where share[i] == run {
                var p = Substring(files[i].path)
                while let slash = p.lastIndex(of: "/") {
                    p = p[..<slash]
                    own.insert(p)
                }
            }
            var list: [String] = []
            var seen = Set<String>()
            for i in files.indices where share[i] != run {
                let path = files[i].path
                // The outermost directory of the path without a file of this share, else the file.
                var ignored = path
                var end = path.startIndex
                while let slash = path[end...].firstIndex(of: "/") {
                    let dir = path[..<slash]
                    if !own.contains(dir) {
                        ignored = String(dir)
                        break
                    }
                    end = path.index(after: slash)
                }
                if seen.insert(ignored).inserted { list.append(ignored) }
            }
            ignores.append(list)
        }
        let longest = ignores.map(\.count).max() ?? 0
        if longest * files.count > maxComparisons { return VerifyBackupPlan(ignores: [[]]) }
        return VerifyBackupPlan(ignores: ignores)
    }
}

extension DrillRun {
    /// The files a restore writes into the data directory on purpose, which the manifest does
    /// not list (or lists with other contents): every run ignores them.
    static let verifyBackupIgnored = ["postgresql.auto.conf", "recovery.signal", "pg_hba.conf"]

    /// Runs `pg_verifybackup` over `pgdata` as ``VerifyBackupPlan`` splits it (one process per
    /// core, started together) and records one `pg_verifybackup` check: passed only when every
    /// run passed; failed when a run found something (findings counted, never quoted: they name
    /// files of the cluster); not run when a run could not start and none found anything.
    static func runVerifyBackup(tool: String, pgdata: String, outputPrefix: String, cores: Int) -> DrillRecord.Check {
        let plan: VerifyBackupPlan
        if let manifest = FileManager.default.contents(atPath: pgdata + "/backup_manifest"), let files = VerifyBackupPlan.files(manifest: manifest) {
            plan = VerifyBackupPlan.split(files.filter { !verifyBackupIgnored.contains($0.path) }, runs: cores)
        } else {
            plan = VerifyBackupPlan(ignores: [[]])  // unreadable manifest: one run reports it
        }
        var started: [(pid: pid_t, out: String)] = []
        var startError: String?
        for (i, extra) in plan.ignores.enumerated() {
            let out = outputPrefix + ".\(i).out"
            var args = ["--no-parse-wal", "--quiet"]
            for path in verifyBackupIgnored + extra { args += ["--ignore", path] }
            args.append(pgdata)
            do {
                let pid = try Spawn.start(tool, args, stdout: out, stderr: out)
                started.append((pid, out))
            } catch {
                startError = startError ?? "\(error)"
            }
        }
        var failed: [Int32] = []
        var lines = 0
        for run in started {
            let status = Spawn.wait(run.pid)
            if status != 0 {
                failed.append(status)
                lines += outputLines(run.out)
            }
        }
        if let status = failed.first {
            let of = plan.ignores.count > 1 ? " (\(failed.count) of \(plan.ignores.count) runs, each on its share of the files)" : ""
            return .failed("pg_verifybackup", reason: "pg_verifybackup exited \(status) with \(lines) lines of findings\(of)")
        }
        if let startError {
            return .notRun("pg_verifybackup", reason: DrillRun.reason("pg_verifybackup could not run: \(startError)"))
        }
        return .passed("pg_verifybackup")
    }
}
