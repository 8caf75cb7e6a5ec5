/// The WAL segment `pg stream` is receiving: one 16 MiB, 4096-aligned buffer filled in LSN order.
///
/// Streamed WAL arrives as messages of any length at increasing LSNs. ``append(_:at:completed:)``
/// copies each into place and hands a whole segment to `completed` when its last byte arrives,
/// then starts the next one in the same buffer: no allocation per message or per segment.
public final class SegmentBuffer {
    /// The segment being filled.
    public private(set) var segment: WALName
    /// Bytes of the segment received so far, from its start.
    public private(set) var received: Int
    private let storage: UnsafeMutableRawBufferPointer

    /// Starts receiving at `lsn` on `timeline`. Only a segment's start can be received into, so
    /// that every stored object begins at its segment's first byte.
    public init(startingAt lsn: UInt64, timeline: UInt32) throws {
        guard lsn % WALName.segmentSize == 0 else {
            throw PostgresError(.failed, "streaming must start at a segment boundary, not \(LSN.format(lsn))")
        }
        segment = WALName.segment(containing: lsn, timeline: timeline)
        received = 0
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(WALName.segmentSize), alignment: 4096)
    }

    deinit { storage.deallocate() }

    /// The LSN of the next byte expected.
    public var position: UInt64 { segment.startLSN + UInt64(received) }

    /// The received part of the segment (valid until the next append).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<received]) }

    /// Copies `data`, which starts at `lsn`, into place. Each segment it completes goes to
    /// `completed` (the whole 16 MiB) before the buffer moves on to the next segment; when
    /// `completed` throws, the segment stays complete and unconsumed, and the rest of `data` is
    /// not taken. WAL must arrive without gaps or overlaps: anything else is an error, since a
    /// gap in stored WAL would end every restore there.
    public func append(_ data: UnsafeRawBufferPointer, at lsn: UInt64, completed: (WALName, UnsafeRawBufferPointer) throws -> Void) throws {
        guard lsn == position else {
            throw PostgresError(.failed, "the server sent wal at \(LSN.format(lsn)), expected \(LSN.format(position))")
        }
        var offset = 0
        while offset < data.count {
            if received == storage.count { try finishSegment(completed) }
            let n = min(data.count - offset, storage.count - received)
            UnsafeMutableRawBufferPointer(rebasing: storage[received..<(received + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: data[offset..<(offset + n)]))
            received += n
            offset += n
        }
        if received == storage.count { try finishSegment(completed) }
    }

    private func finishSegment(_ completed: (WALName, UnsafeRawBufferPointer) throws -> Void) throws {
        try completed(segment, UnsafeRawBufferPointer(storage))
        segment = segment.next
        received = 0
    }
}
