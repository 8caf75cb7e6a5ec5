import Testing
import TresorCore
import TresorCrypto

/// Prints single-thread throughput on 1 MiB buffers; asserts nothing about speed. Run it in a
/// release build on an idle machine for meaningful numbers:
/// `swift test -c release --filter CryptoThroughput`.
@Suite("CryptoThroughput", .serialized)
struct CryptoThroughputTests {
    static let size = 1 << 20

    /// Times each iteration; prints the mean and the best (the best is the steadier figure on a
    /// busy machine, the mean includes interference from other work).
    static func report(_ name: String, iterations: Int, _ body: () -> Void) {
        body()  // warm up
        let clock = ContinuousClock()
        var total = Duration.zero, best = Duration.seconds(1_000)
        for _ in 0..<iterations {
            let elapsed = clock.measure(body)
            total += elapsed
            best = min(best, elapsed)
        }
        print("throughput \(name): best \(mibPerSecond(size, best)) MiB/s, mean \(mibPerSecond(size * iterations, total)) MiB/s"
            + " (\(iterations) × 1 MiB)")
    }

    static func mibPerSecond(_ bytes: Int, _ duration: Duration) -> Int {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        return Int((Double(bytes) / Double(1 << 20) / seconds).rounded())
    }

    @Test("SHA-256, HMAC-SHA-256, AES-256-GCM on 1 MiB buffers")
    func throughput() throws {
        let data = SecureRandom.bytes(Self.size)
        var sink = ObjectID([UInt8](repeating: 0, count: 32))
        data.withUnsafeBytes { input in
            Self.report("SHA-256", iterations: 200) { sink = SHA256.hash(input) }
            let hmac = HMACSHA256(key: SecureRandom.bytes(32))
            Self.report("HMAC-SHA-256", iterations: 200) { sink = hmac.mac(input) }
        }
        #expect(sink != ObjectID([UInt8](repeating: 0, count: 32)))

        let gcm = try AESGCM(key: SecureRandom.bytes(32))
        var sealed = [UInt8](repeating: 0, count: Self.size + AESGCM.overhead)
        var opened = [UInt8](repeating: 0, count: Self.size)
        let noAAD = UnsafeRawBufferPointer(start: nil, count: 0)
        try data.withUnsafeBytes { input in
            try sealed.withUnsafeMutableBytes { sealedBuffer in
                Self.report("AES-256-GCM seal", iterations: 400) { _ = gcm.seal(input, aad: noAAD, into: sealedBuffer) }
                var failures = 0
                try opened.withUnsafeMutableBytes { out in
                    _ = try gcm.open(UnsafeRawBufferPointer(sealedBuffer), aad: noAAD, into: out)
                    Self.report("AES-256-GCM open", iterations: 400) {
                        do { _ = try gcm.open(UnsafeRawBufferPointer(sealedBuffer), aad: noAAD, into: out) } catch { failures += 1 }
                    }
                }
                #expect(failures == 0)
            }
        }
        #expect(opened == data)
    }
}
