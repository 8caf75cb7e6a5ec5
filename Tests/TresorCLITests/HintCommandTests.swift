import ArgumentParser
import Foundation
import Testing

@testable import TresorCLI

/// A hint is the line a user copies: every `tresor …` it names must be a command this CLI has,
/// with options that command takes. The hints are read from the source (every string literal
/// on a line that mentions `hint` and on the lines its expression is wrapped onto,
/// interpolations read as one argument), so a new hint is
/// checked without being listed anywhere. Prose says "Tresor"; lowercase `tresor` is the command.
@Suite struct HintCommandTests {
    struct Mention: CustomStringConvertible {
        var place: String
        var words: [String]
        var description: String { "\(place): tresor \(words.joined(separator: " "))" }
    }

    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    /// The contents of the string literals in `text`, each interpolation replaced by `ARG`.
    static func literals(_ text: Substring) -> [String] {
        let c = Array(text)
        var out: [String] = []
        var i = 0
        while i < c.count {
            guard c[i] == "\"" else {
                i += 1
                continue
            }
            var literal = ""
            var j = i + 1
            while j < c.count, c[j] != "\"" {
                if c[j] == "\\", j + 1 < c.count, c[j + 1] == "(" {
                    var depth = 1
                    j += 2
                    while j < c.count, depth > 0 {
                        if c[j] == "(" { depth += 1 } else if c[j] == ")" { depth -= 1 }
                        j += 1
                    }
                    literal += "ARG"
                } else if c[j] == "\\", j + 1 < c.count {
                    literal.append(c[j + 1])
                    j += 2
                } else {
                    literal.append(c[j])
                    j += 1
                }
            }
            out.append(literal)
            i = j + 1
        }
        return out
    }

    /// The words after each `tresor ` in `literal`, up to the end of that command (`;`, `,`,
    /// a parenthesis or a quote).
    static func commands(in literal: String) -> [[String]] {
        var out: [[String]] = []
        var rest = Substring(literal)
        while let r = rest.range(of: "tresor ") {
            let before = rest[..<r.lowerBound].last
            rest = rest[r.upperBound...]
            if let before, before.isLetter || before == "-" || before == "_" { continue }
            let end = rest.firstIndex(where: { ";,()'\"`".contains($0) }) ?? rest.endIndex
            out.append(rest[..<end].split(separator: " ").map(String.init))
        }
        return out
    }

    static func mentions() throws -> [Mention] {
        var out: [Mention] = []
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let url as URL in files where url.pathExtension == "swift" {
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            for (n, line) in lines.enumerated() {
                guard let at = line.range(of: "hint") else { continue }
                // The hint's expression goes on over the lines the formatter wrapped it onto:
                // those that open with a literal or with the branches of a `? :`.
                var text = String(line[at.lowerBound...])
                var next = n + 1
                while next < lines.count, let first = lines[next].first(where: { $0 != " " }), "\"?:".contains(first) {
                    text += "\n" + lines[next]
                    next += 1
                }
                for literal in literals(Substring(text)) {
                    for words in commands(in: literal) {
                        out.append(Mention(place: "\(url.lastPathComponent):\(n + 1)", words: words))
                    }
                }
            }
        }
        return out
    }

    /// Why `words` (what follows `tresor`) is no command line of this CLI, or nil when it is one.
    static func problem(_ words: [String]) -> String? {
        var i = 0
        while i < words.count, words[i].hasPrefix("--") {
            let name = String(words[i].split(separator: "=")[0])
            if GlobalOptions.withValue.contains(name) {
                i += words[i].contains("=") ? 1 : 2
            } else if GlobalOptions.flags.contains(name) || name == "--help" {
                i += 1
            } else {
                return "\(name) is no global option"
            }
        }
        var command: ParsableCommand.Type = Tresor.self
        var path = "tresor"
        while i < words.count, !command.configuration.subcommands.isEmpty {
            let word = words[i]
            if let sub = command.configuration.subcommands.first(where: { $0._commandName == word }) {
                command = sub
                path += " " + word
                i += 1
            } else if ObjectIdentifier(command) == ObjectIdentifier(Tresor.self), word == "help" {
                guard i + 1 < words.count else { return nil }
                let topic = words[i + 1]
                return topic == "ARG" || Tresor.configuration.subcommands.contains(where: { $0._commandName == topic })
                    ? nil : "'tresor help \(topic)' names no command"
            } else if let fallback = command.configuration.defaultSubcommand {
                command = fallback
            } else {
                return "'\(path) \(word)' is no command"
            }
        }
        if !command.configuration.subcommands.isEmpty, command.configuration.defaultSubcommand == nil,
            ObjectIdentifier(command) != ObjectIdentifier(Tresor.self)
        {
            return "'\(path)' needs a subcommand"
        }
        let help = Tresor.helpMessage(for: command, includeHidden: true, columns: 10_000)
        let options = Set(help.matches(of: /--[a-z0-9-]+/).map { String($0.output) })
        for word in words[i...] where word.hasPrefix("--") {
            let name = String(word.split(separator: "=")[0])
            guard options.contains(name) || GlobalOptions.withValue.contains(name) || GlobalOptions.flags.contains(name) else {
                return "'\(path)' has no option \(name)"
            }
        }
        return nil
    }

    @Test func theCheckRefusesCommandsAndOptionsTheCLIDoesNotHave() {
        #expect(Self.problem(["docs", "backup", "ARG"]) == nil)
        #expect(Self.problem(["--home", "ARG", "init"]) == nil)
        #expect(Self.problem(["pg", "setup", "ARG", "--wal-credentials", "FILE"]) == nil)
        #expect(Self.problem(["export", "ARG", "--from-backup", "--out", "FILE"]) == nil)  // the default subcommand
        #expect(Self.problem(["release", "at", "least"]) == "'tresor release' is no command")
        #expect(Self.problem(["docs", "backup-all", "ARG"]) == "'tresor docs backup-all' is no command")
        #expect(Self.problem(["pg", "setup", "ARG", "--cluster-name", "x"]) == "'tresor pg setup' has no option --cluster-name")
        #expect(Self.problem(["help", "bogus"]) == "'tresor help bogus' names no command")
        #expect(Self.problem(["pg"]) == "'tresor pg' needs a subcommand")
    }

    @Test func everyCommandAHintNamesExistsWithTheOptionsItGives() throws {
        let mentions = try Self.mentions()
        // The scan finds the hints at all (a broken scanner would pass vacuously).
        #expect(mentions.count > 80)
        #expect(mentions.contains { $0.words.starts(with: ["pg", "setup"]) })
        for m in mentions {
            if let why = Self.problem(m.words) { Issue.record("\(m): \(why)") }
        }
    }

    @Test func aMistypedCommandIsNotAnsweredWithHelpForIt() {
        #expect(TresorCLI.usageHint(["no-such-command"]) == "tresor --help")
        #expect(TresorCLI.usageHint(["--bogus"]) == "tresor --help")
        #expect(TresorCLI.usageHint([]) == "tresor --help")
        #expect(TresorCLI.usageHint(["docs", "backup"]) == "tresor help docs")
        #expect(Self.problem(TresorCLI.usageHint(["docs"]).split(separator: " ").dropFirst().map(String.init)) == nil)
    }
}
