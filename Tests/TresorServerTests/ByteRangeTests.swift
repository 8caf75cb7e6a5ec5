import Testing

@testable import TresorServer

@Suite("Range header")
struct ByteRangeTests {
    @Test("single ranges are honoured and clamped to the file, as curl -C - sends them")
    func rangeMisreadBreaksResume() {
        #expect(ByteRangeRequest.parse("bytes=100-", size: 1000) == .partial(first: 100, last: 999))
        #expect(ByteRangeRequest.parse("bytes=0-0", size: 1000) == .partial(first: 0, last: 0))
        #expect(ByteRangeRequest.parse("bytes=10-5000", size: 1000) == .partial(first: 10, last: 999))
        #expect(ByteRangeRequest.parse("bytes=-10", size: 1000) == .partial(first: 990, last: 999))
        #expect(ByteRangeRequest.parse("bytes=-5000", size: 1000) == .partial(first: 0, last: 999))
        #expect(ByteRangeRequest.parse(nil, size: 1000) == .full)
    }

    @Test("ranges past the end are unsatisfiable (416), not served empty or whole")
    func unsatisfiableRangeServedAsWhole() {
        #expect(ByteRangeRequest.parse("bytes=1000-", size: 1000) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=5000-6000", size: 1000) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=-0", size: 1000) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=99999999999999999999-", size: 1000) == .unsatisfiable)
    }

    @Test("malformed, multi-range or other-unit headers are ignored (whole file), as RFC 9110 allows")
    func malformedRangeAnswered206() {
        for h in ["items=0-5", "bytes=5-1", "bytes=0-1,5-6", "bytes=a-b", "bytes=-", "bytes=1", "bytes= 1 - 2x"] {
            #expect(ByteRangeRequest.parse(h, size: 1000) == .full, "\(h)")
        }
    }
}
