import TresorCore

/// Blob records by blob id: records appended to fixed-size segments, found through an
/// open-addressed (linear probing) table of record numbers. Records are never removed; setting
/// an id already present overwrites its record in place. Not thread-safe by itself.
struct BlobTable {
    struct Record {
        var id: ObjectID
        var pack: UInt32
        var offset: UInt32
        var length: UInt32
        var rawLength: UInt32
        var type: BlobType
        var compression: BlobCompression
    }

    static let segmentShift = 16
    static let segmentSize = 1 << segmentShift

    private var segments: [[Record]] = []
    /// Record number + 1 per slot, 0 when empty; the count is a power of two (or zero).
    private var slots: [UInt32] = []
    private(set) var count = 0

    subscript(_ n: Int) -> Record {
        segments[n >> Self.segmentShift][n & (Self.segmentSize - 1)]
    }

    /// Blob ids are SHA-256 or MAC outputs, but ids made up in tests need not be: mix all words.
    private static func hash(_ id: ObjectID) -> UInt64 {
        var h = id.w0 ^ id.w1.rotated(17) ^ id.w2.rotated(31) ^ id.w3.rotated(47)
        h = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return h ^ (h >> 33)
    }

    /// The record number of `id`, if present.
    func find(_ id: ObjectID) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: Self.hash(id)) & mask
        while true {
            let s = slots[i]
            if s == 0 { return nil }
            if self[Int(s) - 1].id == id { return Int(s) - 1 }
            i = (i + 1) & mask
        }
    }

    /// Makes room for `additional` more records without rehashing in between.
    mutating func reserve(additional: Int) {
        let needed = count + additional
        // Load factor at most 3/4.
        guard needed * 4 > slots.count * 3 else { return }
        var size = max(slots.count, 1024)
        while needed * 4 > size * 3 { size *= 2 }
        rehash(size)
    }

    /// Adds `record`, or replaces the record of the same id (the last location wins).
    mutating func set(_ record: Record) {
        reserve(additional: 1)
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: Self.hash(record.id)) & mask
        while slots[i] != 0 {
            let n = Int(slots[i]) - 1
            if self[n].id == record.id {
                segments[n >> Self.segmentShift][n & (Self.segmentSize - 1)] = record
                return
            }
            i = (i + 1) & mask
        }
        precondition(count < Int(UInt32.max), "more than 2^32 - 1 blobs in one index")
        if count & (Self.segmentSize - 1) == 0 {
            var segment: [Record] = []
            segment.reserveCapacity(Self.segmentSize)
            segments.append(segment)
        }
        segments[segments.count - 1].append(record)
        count += 1
        slots[i] = UInt32(count)
    }

    /// Calls `body` with every record, in the order they were first added.
    func forEach(_ body: (Record) -> Void) {
        for segment in segments { for r in segment { body(r) } }
    }

    private mutating func rehash(_ size: Int) {
        slots = []
        slots = [UInt32](repeating: 0, count: size)
        let mask = size - 1
        var n = 0
        for segment in segments {
            for r in segment {
                var i = Int(truncatingIfNeeded: Self.hash(r.id)) & mask
                while slots[i] != 0 { i = (i + 1) & mask }
                n += 1
                slots[i] = UInt32(n)
            }
        }
    }
}

private extension UInt64 {
    func rotated(_ k: UInt64) -> UInt64 { self << k | self >> (64 - k) }
}
