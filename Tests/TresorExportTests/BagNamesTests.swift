import Testing

@testable import TresorExport

@Suite("Bag names")
struct BagNamesTests {
    @Test("zip names: UTF-8 unchanged; other bytes and that name's % as %XX")
    func zipNameThatIsAmbiguousOrChanged() {
        #expect(BagNames.zipName(Array("Grüße 100%.txt".utf8)) == Array("Grüße 100%.txt".utf8))
        #expect(BagNames.zipName([0x61, 0xFF, 0x25, 0xC3]) == Array("a%FF%25%C3".utf8))
        // An overlong encoding of '/' is not UTF-8 either.
        #expect(BagNames.zipName([0xC0, 0xAF]) == Array("%C0%AF".utf8))
    }

    @Test("manifest paths: CR and LF encoded, % as validators read it")
    func manifestPathThatSplitsALine() {
        #expect(BagNames.manifestPath(Array("a\r\nb%0A.txt".utf8)) == Array("a%0D%0Ab%0A.txt".utf8))
    }

    @Test("removed-path lines: %, CR, LF and non-UTF-8 bytes as %XX, so every line decodes back to its bytes")
    func removedPathLineThatIsAmbiguous() {
        #expect(BagNames.listedPath(Array("Grüße 100%.txt".utf8)) == Array("Grüße 100%25.txt".utf8))
        #expect(BagNames.listedPath([0x61, 0x0A, 0x0D, 0xFF, 0x25]) == Array("a%0A%0D%FF%25".utf8))
    }

    @Test("table file names: / and % and control characters as %XX")
    func tableFileNameThatEscapesItsFolder() {
        #expect(BagNames.fileComponent("a/b%c\td") == "a%2Fb%25c%09d")
        #expect(BagNames.fileComponent("Tâble") == "Tâble")
    }
}
