import Testing
import TresorCore
import TresorRepository

@Suite struct TreeBrowseTests {
    @Test func anEscapedNameReadsBackToItsExactBytes() {
        for name: [UInt8] in [
            Array("docs/caf".utf8) + [0xE9], Array("docs/a\nb".utf8), Array("docs/back\\slash".utf8),
            Array("docs/plain é".utf8), Array("docs/x".utf8) + [0xFF, 0x7F, 0x01],
        ] {
            let shown = BrowsePath.shown(name)
            #expect(!shown.text.contains("\n"))
            #expect(BrowsePath.parse(shown.text) == name, "\(shown.text)")
        }
        #expect(BrowsePath.shown(Array("docs/plain é".utf8)) == ("docs/plain é", false))
        #expect(BrowsePath.shown(Array("docs/caf".utf8) + [0xE9]) == ("docs/caf\\xe9", true))
    }

    @Test func pathsThatCouldEscapeOrAreMalformedAreRefused() {
        for bad in ["", "/", "/docs", "..", "docs/..", "docs/../x", "./docs", "docs//a", "docs/\\x00", "docs/\\x2", "docs/\\q"] {
            #expect(BrowsePath.parse(bad) == nil, "\(bad)")
        }
        #expect(BrowsePath.parse("docs/a/") == Array("docs/a".utf8))
    }

    @Test func aGlobWithASlashMatchesPathTailsAndWithoutOneOnlyNames() {
        let name = TreeGlob("inv*.pdf", ignoreCase: false)
        #expect(name.matches(Array("docs/x/invoice.pdf".utf8)))
        #expect(!name.matches(Array("docs/inv/x.txt".utf8)))
        let path = TreeGlob("x/*.pdf", ignoreCase: false)
        #expect(path.matches(Array("docs/x/a.pdf".utf8)))
        #expect(!path.matches(Array("docs/x/y/a.pdf".utf8)), "* does not cross /")
        let anchored = TreeGlob("/x/*.pdf", ignoreCase: false)
        #expect(!anchored.matches(Array("docs/x/a.pdf".utf8)))
        let folded = TreeGlob("INV*", ignoreCase: true)
        #expect(folded.matches(Array("docs/invoice".utf8)))
    }

    @Test func aGlobReadsAPathInsideALargerBufferByItsOwnIndices() {
        // Paths come as slices of a decoded tree blob: indices do not start at 0.
        let blob = Array("xx/invoice.pdf|docs/x/a.pdf|docs/x/y/a.pdf".utf8)
        let first = blob[0..<14], second = blob[15..<27], third = blob[28...]
        #expect(TreeGlob("inv*.pdf", ignoreCase: false).matches(first))
        #expect(!TreeGlob("xx*", ignoreCase: false).matches(first), "a name glob sees only the last segment")
        #expect(TreeGlob("x/*.pdf", ignoreCase: false).matches(second))
        #expect(!TreeGlob("x/*.pdf", ignoreCase: false).matches(third))
        #expect(TreeGlob("/docs/x/a.pdf", ignoreCase: false).matches(second))
        #expect(!TreeGlob("/x/a.pdf", ignoreCase: false).matches(second))
    }

    @Test func aDirectoryWhoseOnlyChangeIsItsMtimeIsNotReportedChanged() {
        func node(_ p: String, _ kind: TreeNode.Kind, mtime: Int64, mode: UInt32 = 0o644, chunks: [ObjectID] = []) -> TreeNode {
            TreeNode(
                path: p, kind: kind, mode: mode, mtimeSeconds: mtime, mtimeNanoseconds: 0, uid: 0, gid: 0,
                size: UInt64(chunks.count), device: 0, inode: 0, chunks: chunks)
        }
        let a = ObjectID([UInt8](repeating: 1, count: 32)), b = ObjectID([UInt8](repeating: 2, count: 32))
        let old = [
            node("d", .directory, mtime: 1), node("d/f", .file, mtime: 1, chunks: [a]), node("d/g", .file, mtime: 1),
            node("d/h", .file, mtime: 1),
        ]
        let new = [
            node("d", .directory, mtime: 2), node("d/f", .file, mtime: 2, chunks: [b]), node("d/g", .file, mtime: 1, mode: 0o600),
            node("d/i", .file, mtime: 2),
        ]
        let d = TreeDiff.diff(old: old, new: new).map { ($0.new ?? $0.old)!.displayPath + ":" + ($0.change?.rawValue ?? ($0.new == nil ? "removed" : "added")) }
        #expect(d == ["d/f:content", "d/g:metadata", "d/i:added", "d/h:removed"])
    }
}
