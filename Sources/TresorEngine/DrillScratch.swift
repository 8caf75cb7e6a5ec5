import Foundation
import TresorCore

#if canImport(Glibc)
import Glibc
#endif

/// The scratch directories of restore drills, `HOME/scratch/drill-<id>/`, and of exports from
/// backup, `HOME/scratch/export-<id>/` (one ``kind`` per value), each holding an
/// `owner` file with the drill process's pid, the restored data directory (`pgdata`), the scratch
/// server's work directory (`server`) and the sampled documents (`docs`).
///
/// A drill removes its own directory when it ends, passed or failed. A drill killed with
/// SIGKILL cannot: its directory (and possibly a running scratch server) stays until the next
/// drill or `tresor drill clean` finds it, sees that its owner process is gone, stops the server
/// (immediate shutdown, through the pid in `postmaster.pid`) and removes everything.
public struct DrillScratch: Sendable {
    public let root: URL
    /// The directory name prefix this value creates and cleans: `drill` or `export`.
    public let kind: String

    public init(home: Home, kind: String = "drill") {
        root = home.root.appendingPathComponent("scratch")
        self.kind = kind
    }

    /// What `drill clean` (or the start of a drill) removed.
    public struct Cleaned: Codable, Sendable {
        /// Leftover drill directories removed.
        public var directories: [String] = []
        /// Scratch servers that were still running and were stopped.
        public var serversStopped = 0
        /// Directories left alone because their drill is still running.
        public var inUse: [String] = []
    }

    /// Creates a new drill directory owned by this process. The directories are traversable by
    /// others (mode 0711, never listable) so the `postgres` user reaches the data directory.
    public func create(id: String) throws -> URL {
        let dir = root.appendingPathComponent("\(kind)-\(id)")
        for d in [root.path, dir.path] {
            if mkdir(d, 0o711) != 0 && errno != EEXIST {
                throw CoreError.failed("cannot create \(d): \(String(cString: strerror(errno)))")
            }
            chmod(d, 0o711)
        }
        try "\(getpid())\n".write(to: dir.appendingPathComponent("owner"), atomically: true, encoding: .utf8)
        return dir
    }

    /// Whether the drill that owns `dir` is still running: its pid is alive and is a tresor
    /// process. A directory without a readable owner file is a leftover too (a drill killed
    /// before it wrote it).
    func ownerAlive(_ dir: URL) -> Bool {
        // No owner file: killed between mkdir and the write; nothing can be running in it.
        guard let text = try? String(contentsOf: dir.appendingPathComponent("owner"), encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return false }
        if pid == getpid() { return true }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // A reused pid that is no tresor process is no drill.
        let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        return String(decoding: cmdline, as: UTF8.self).contains("tresor")
    }

    /// Removes every drill directory whose drill is no longer running, stopping a scratch server
    /// still running in it first.
    public func cleanLeftovers() throws -> Cleaned {
        var cleaned = Cleaned()
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: root.path)
        } catch CocoaError.fileReadNoSuchFile {
            return cleaned  // no drill ever ran here
        } catch {
            throw CoreError.failed("cannot list \(root.path): \(error)")
        }
        for name in names.sorted() where name.hasPrefix(kind + "-") {
            let dir = root.appendingPathComponent(name)
            if ownerAlive(dir) {
                cleaned.inUse.append(name)
                continue
            }
            if try Self.stopServer(dataDirectory: dir.appendingPathComponent("pgdata").path) { cleaned.serversStopped += 1 }
            try remove(dir)
            cleaned.directories.append(name)
        }
        return cleaned
    }

    /// Removes a drill directory; an error names what could not be removed.
    ///
    /// The regular files go first, on one thread per core with about the same bytes each
    /// (``unlinkFiles(under:threads:)``): unlinking a file drops its cached pages, a cost that
    /// grows with its size (0.25 s for the 780 MB heap of `pgbench -s 60`, about as much again
    /// for the rest of a drill's 1.7 GB), and it is the last step of every drill. Then the tree
    /// is removed as before, with whatever a thread could not unlink: that removal fails and
    /// says why, so nothing is left behind quietly.
    public func remove(_ dir: URL) throws {
        Self.unlinkFiles(under: dir.path, threads: availableCores)
        do {
            try FileManager.default.removeItem(at: dir)
        } catch CocoaError.fileNoSuchFile {
            return  // already gone: nothing left behind
        } catch {
            throw CoreError.failed(
                "cannot remove the \(kind)'s scratch directory \(dir.path): \(error)",
                hint: kind == "drill" ? "remove it by hand, or run tresor drill clean" : "remove it by hand; the next \(kind) from backup removes it too")
        }
    }

    /// Unlinks the regular files under `root`, dealt largest first to the thread with the
    /// fewest bytes so far (``sharesBySize(_:count:before:)``). Every directory is opened from its parent's descriptor with
    /// `O_NOFOLLOW` and every file is unlinked through its directory's descriptor
    /// (`unlinkat`), so a directory swapped for a symbolic link meanwhile (the data directory
    /// belongs to the PostgreSQL user) is never followed out of the tree; links and special
    /// files are left for the tree's removal, as are the directories past the first 256 opened.
    /// Best effort by design: a directory that cannot be listed or a file that cannot be
    /// unlinked stays where it is, and the removal of the tree that follows reports it.
    static func unlinkFiles(under root: String, threads: Int) {
        let top = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard top >= 0 else { return }  // gone or unreadable: the tree's removal says which (above)
        var opened = [top]
        defer { for fd in opened { close(fd) } }
        var files: [(dir: Int32, name: [CChar], size: Int64)] = []
        var pending = [top]
        while let d = pending.popLast() {
            let copy = dup(d)
            guard copy >= 0, let stream = fdopendir(copy) else {
                if copy >= 0 { close(copy) }
                continue  // unlistable: left to the tree's removal (above)
            }
            defer { closedir(stream) }
            while let ent = readdir(stream) {
                let name: [CChar] = withUnsafeBytes(of: &ent.pointee.d_name) { raw in
                    let n = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
                    return raw[0..<n].map { CChar(bitPattern: $0) } + [0]
                }
                if name == [0x2E, 0] || name == [0x2E, 0x2E, 0] { continue }
                var st = stat()
                guard fstatat(d, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }  // gone, or left to the tree's removal
                switch st.st_mode & S_IFMT {
                case S_IFREG:
                    files.append((d, name, Int64(st.st_size)))
                case S_IFDIR where opened.count < 256:
                    let sub = openat(d, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if sub >= 0 {
                        opened.append(sub)
                        pending.append(sub)
                    }
                default:
                    continue  // links, special files, directories past the limit: removed with the tree
                }
            }
        }
        let work = sharesBySize(files.map(\.size), count: max(1, min(threads, files.count))).map { $0.map { (dir: files[$0].dir, name: files[$0].name) } }
        runOnThreads(work.count, name: "scratch-rm") { i in
            for f in work[i] { _ = unlinkat(f.dir, f.name, 0) }  // what stays is reported by the tree's removal (above)
        }
    }

    /// Stops a postmaster left running in `dataDirectory` (immediate shutdown, then SIGKILL after
    /// 30 s); true when one was running.
    static func stopServer(dataDirectory: String) throws -> Bool {
        // No postmaster.pid: no server ever started there, or it stopped cleanly.
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first, let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), pid > 0
        else { return false }
        guard kill(pid, 0) == 0 else { return false }
        let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        guard String(decoding: cmdline, as: UTF8.self).contains("postgres") else { return false }  // a reused pid
        kill(pid, SIGQUIT)
        let deadline = Date().addingTimeInterval(30)
        while kill(pid, 0) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                Thread.sleep(forTimeInterval: 0.5)
                break
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        if kill(pid, 0) == 0 {
            throw CoreError.failed("the scratch server (pid \(pid)) in \(dataDirectory) does not stop", hint: "kill -9 \(pid), then tresor drill clean")
        }
        return true
    }
}
