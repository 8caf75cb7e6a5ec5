/// Appends the primitive values of Tresor's binary formats to a byte array: little-endian fixed
/// integers, unsigned LEB128 varints, and length-prefixed byte strings (see the Format article).
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func varint(_ v: Int) { varint(UInt64(v)) }

    /// A signed value, zig-zag encoded as a varint.
    public mutating func svarint(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    public mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }

    public mutating func id(_ id: ObjectID) {
        withUnsafeBytes(of: id) { bytes.append(contentsOf: $0) }
    }

    /// A varint length followed by the bytes.
    public mutating func data<C: Collection>(_ b: C) where C.Element == UInt8 {
        varint(b.count)
        bytes.append(contentsOf: b)
    }

    public mutating func string(_ s: String) { data(Array(s.utf8)) }
}

/// Reads what ``ByteWriter`` wrote; every read is bounds-checked and throws on truncated input.
public struct ByteReader {
    public struct Truncated: TresorFailure {
        public let kind = FailureKind.failed
        public let message: String
        public let hint: String? = nil
    }

    private let bytes: [UInt8]
    public private(set) var offset: Int
    private let what: String

    public init(_ bytes: [UInt8], what: String = "object") {
        self.bytes = bytes
        self.offset = 0
        self.what = what
    }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { bytes.count - offset }

    private func need(_ n: Int) throws {
        // `n <= remaining`, not `offset + n <= count`: a length read from damaged bytes can be
        // near Int.max, and the sum would trap.
        guard n >= 0, n <= bytes.count - offset else {
            throw Truncated(message: "\(what) is truncated or malformed at byte \(offset)")
        }
    }

    public mutating func u8() throws -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u32() throws -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    public mutating func u64() throws -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    public mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8()
            guard shift < 64 else { throw Truncated(message: "\(what) has an overlong varint at byte \(offset)") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    public mutating func int() throws -> Int {
        let v = try varint()
        guard v <= UInt64(Int.max) else { throw Truncated(message: "\(what) has an out-of-range number at byte \(offset)") }
        return Int(v)
    }

    public mutating func svarint() throws -> Int64 {
        let v = try varint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    public mutating func raw(_ n: Int) throws -> ArraySlice<UInt8> {
        try need(n)
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func id() throws -> ObjectID {
        try need(32)
        defer { offset += 32 }
        return bytes.withUnsafeBytes { ObjectID(bytes: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + 32])) }
    }

    public mutating func data() throws -> ArraySlice<UInt8> { try raw(try int()) }

    public mutating func string() throws -> String { String(decoding: try data(), as: UTF8.self) }
}
