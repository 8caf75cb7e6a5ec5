import Foundation
import Testing
import TresorTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Document backups and restores through the real binary: what used to be lost quietly.
@Suite(.serialized) struct DocumentSafetyTests {
    private static let small = {
        var o = CorpusBuilder.Options(); o.smallFiles = 5; o.largeFiles = 0; return o
    }()

    @Test func anUnreadableDirectoryIsInTheSkippedListAndTheBackupExitsThree() throws {
        let f = try Fixture(corpus: Self.small)
        let locked = f.docs.appendingPathComponent("locked").path
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: locked + "/inside.txt", contents: Data("x".utf8)))
        // Root reads everything, so the backup runs as the postgres user, who owns all of it but
        // may not read the 000 directory.
        try Self.giveToPostgres(f)
        #expect(chmod(locked, 0) == 0)
        defer { chmod(locked, 0o755) }

        let (code, text) = try Self.asPostgres(["--home", f.home, "docs", "backup", "acme"])
        #expect(code == 3, "exit \(code): \(text)")
        #expect(text.contains("skipped: docs/locked: cannot open directory: Permission denied"), "\(text)")
    }

    @Test func aDeviceNodeRestoredWithoutRootIsReportedAndTheRestoreExitsThree() throws {
        let f = try Fixture(corpus: Self.small)
        #expect(mknod(f.docs.path + "/null", S_IFCHR | 0o600, dev_t(259)) == 0, "tests run as root")
        #expect(mkfifo(f.docs.path + "/pipe", 0o600) == 0)
        try f.expectOK(["docs", "backup", "acme"])
        try Self.giveToPostgres(f)
        let target = f.dir.sub("as-postgres").path
        let (code, text) = try Self.asPostgres(["--home", f.home, "docs", "restore", "acme", "--to", target])
        #expect(code == 3, "exit \(code): \(text)")
        #expect(text.contains("incomplete: docs/null: device node not restored: creating one needs root"), "\(text)")
        var st = stat()
        #expect(lstat(target + "/docs/null", &st) != 0, "no stand-in file for the device")
        #expect(lstat(target + "/docs/pipe", &st) == 0 && st.st_mode & S_IFMT == S_IFIFO, "a FIFO needs no root")
    }

    private static func giveToPostgres(_ f: Fixture) throws {
        let chown = Process()
        chown.executableURL = URL(fileURLWithPath: "/bin/chown")
        chown.arguments = ["-R", "postgres:postgres", f.dir.path]
        try chown.run()
        chown.waitUntilExit()
        #expect(chown.terminationStatus == 0)
    }

    /// Runs the binary as the postgres user; exit code and combined output.
    private static func asPostgres(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        p.arguments = ["-u", "postgres", "--", TresorProcess.binary] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test func aNonUTF8NameRoundTripsThroughTheBinary() throws {
        let f = try Fixture(corpus: Self.small)
        let name: [CChar] = Array("caf".utf8CString.dropLast()) + [CChar(bitPattern: 0xE9)] + Array(".txt".utf8CString)
        let dir = open(f.docs.path, O_RDONLY | O_DIRECTORY)
        let fd = openat(dir, name, O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0)
        _ = Array("bytes".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        close(dir)
        let backup = try f.expectOK(["docs", "backup", "acme"])
        #expect(!backup.stdout.contains("skipped"))
        let (restored, r) = try f.restore("latest", extra: ["--no-sync"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        let rdir = open(restored.path, O_RDONLY | O_DIRECTORY)
        var st = stat()
        #expect(fstatat(rdir, name, &st, AT_SYMLINK_NOFOLLOW) == 0, "the file is back under its byte-exact name")
        #expect(st.st_size == 5)
        close(rdir)
    }
}
