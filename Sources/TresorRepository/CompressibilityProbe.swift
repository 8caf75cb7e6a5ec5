import Foundation

/// Decides cheaply, before zstd runs, that a chunk is not worth compressing.
///
/// Random-looking bytes (photos, PDFs, archives, encrypted files) are about half of a typical
/// document corpus by size, and zstd level 3 spends as long failing on them (~400 MB/s per core)
/// as it does compressing text; the pack builder then stores them raw anyway, because the frame
/// came out larger. The probe reads 4 KiB samples spread every 32 KiB over the chunk and measures
/// each sample's order-0 byte entropy. Only when every sample is above ``threshold`` bits per byte
/// is the chunk stored raw without trying zstd; the first sample below it stops the probe and the
/// chunk is compressed as before (compress-and-compare still decides the stored form).
///
/// What it can lose: order-0 entropy of 7.9 bits per byte leaves at most ~1.3% for zstd's literal
/// coding, so high-entropy samples cost at most that much from that source. A compressible
/// stretch shorter than the 32 KiB stride that falls between two samples, or long repeats of
/// random bytes inside one chunk, would go uncompressed; both are rare in documents and cost
/// repository size, never correctness (the stored blob is marked uncompressed and reads back as
/// is). Chunks under ``minimumLength`` are not probed (they are small files, mostly text, cheap to
/// try). Costs one 256-counter histogram per sample (1/8 of a probed chunk's bytes when all
/// samples are random, 4 KiB when the first is not); allocates nothing.
public enum CompressibilityProbe {
    /// Bytes per sample.
    public static let sampleBytes = 4096
    /// Distance between the starts of two samples.
    public static let stride = 32 * 1024
    /// Chunks shorter than this are always given to zstd.
    public static let minimumLength = 64 * 1024
    /// Entropy, in bits per byte, at or above which a sample counts as incompressible. Uniform
    /// random bytes measure about 7.95 over 4 KiB (the estimate runs low by ~0.045 bits at this
    /// sample size); English text 4–5, CSV and JSON 3–5.5, base64 6.
    public static let threshold = 7.9

    /// Whether zstd can be skipped for `data`: true only when every sample looks random.
    public static func isIncompressible(_ data: UnsafeRawBufferPointer) -> Bool {
        guard data.count >= minimumLength, let base = data.baseAddress else { return false }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 256) { counts in
            var offset = 0
            while offset + sampleBytes <= data.count {
                if entropy(base + offset, counts) < threshold { return false }
                offset += stride
            }
            return true
        }
    }

    /// Order-0 entropy in bits per byte of `sampleBytes` bytes at `p`.
    static func entropy(_ p: UnsafeRawPointer, _ counts: UnsafeMutableBufferPointer<UInt32>) -> Double {
        counts.initialize(repeating: 0)
        let bytes = p.assumingMemoryBound(to: UInt8.self)
        for i in 0..<sampleBytes { counts[Int(bytes[i])] &+= 1 }
        // H = log2(N) - (1/N) * sum(c * log2 c)
        var sum = 0.0
        for c in counts where c > 1 {
            let x = Double(c)
            sum += x * log2(x)
        }
        let n = Double(sampleBytes)
        return log2(n) - sum / n
    }
}
