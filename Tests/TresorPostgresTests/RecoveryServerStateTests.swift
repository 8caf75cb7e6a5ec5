import Foundation
import Testing
import TresorTestSupport

@testable import TresorPostgres

/// A drill follows recovery by reading the control file's state itself (no pg_controldata per
/// look); it must agree with pg_controldata, or a drill would wait for a promotion it missed or
/// check a server still recovering.
@Suite struct RecoveryServerStateTests {
    private func controldataSaysInProduction(_ cluster: ScratchCluster) throws -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ScratchCluster.bin + "/pg_controldata")
        p.arguments = ["-D", cluster.dataDirectory]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let line = text.split(separator: "\n").first { $0.hasPrefix("Database cluster state:") }
        return line?.dropFirst("Database cluster state:".count).trimmingCharacters(in: .whitespaces) == "in production"
    }

    @Test func theControlFileReadDirectlyAgreesWithPgControldataOnARunningAndAStoppedCluster() throws {
        let cluster = try ScratchCluster(label: "control")
        try cluster.start()
        #expect(try controldataSaysInProduction(cluster))
        #expect(RecoveryServer.inProduction(dataDirectory: cluster.dataDirectory) == true)
        try cluster.stop()
        #expect(try !controldataSaysInProduction(cluster))
        #expect(RecoveryServer.inProduction(dataDirectory: cluster.dataDirectory) == false)
    }

    @Test func aMissingControlFileIsUnknownSoTheCallerAsksPgControldata() {
        #expect(RecoveryServer.inProduction(dataDirectory: "/nonexistent-\(UUID().uuidString)") == nil)
    }
}
