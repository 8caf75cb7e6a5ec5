import ArgumentParser
import Foundation
import TresorCore
import TresorEngine
import TresorServer

/// `tresor export link T FILE [--expires D] [--base URL]`.
struct ExportLinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Print a signed, expiring download link to a published export (HOME/exports/T/FILE) for tresor serve (docs/serve.md).")

    @Argument(help: "Tenant name.", transform: TenantID.init) var tenant: TenantID
    @Argument(help: "The published export's file name (tresor export T --publish --out FILE).") var file: String
    @Option(help: "How long the link works, e.g. 7d, 12h (default: the policy's exports.link_lifetime).") var expires: String?
    @Option(help: "Where customers reach tresor serve (scheme, host, port).") var base = "http://127.0.0.1:8080"

    struct Output: Encodable {
        let tenant, file, link, accessLog, id, sha256: String
        let bytes: Int64
        let expires: Date
    }

    func run() throws {
        var lifetime: PolicyDuration?
        if let expires {
            guard let d = PolicyDuration(expires), d.seconds >= 1 else {
                throw CoreError.usage("--expires '\(expires)' is not a duration", hint: "a number and one unit: 90s, 12h, 7d, 2w")
            }
            lifetime = d
        }
        let (link, digest) = try ctx.installation().makeExportLink(tenant: tenant, file: file, lifetime: lifetime)
        let root = base.hasSuffix("/") ? String(base.dropLast()) : base
        let expiry = Date(timeIntervalSince1970: Double(link.expires))
        let out = Output(
            tenant: tenant.rawValue, file: file, link: root + link.path, accessLog: root + link.accessLogPath, id: link.id,
            sha256: digest.sha256, bytes: digest.size, expires: expiry)
        ctx.emit(out) {
            "\(out.link)\n  \(file): \(digest.size) bytes, sha256 \(digest.sha256)\n  valid until \(TimeFormat.string(expiry)), link id \(link.id)\n  access log: \(out.accessLog)"
        }
    }
}

/// `tresor export revoke LINK`.
struct ExportRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Make a download link stop working at once (its id goes to HOME/exports/revoked-links).")

    @Argument(help: "The link, as tresor export link printed it.") var link: String

    struct Output: Encodable { let tenant, file, id: String }

    func run() throws {
        let l = try ctx.installation().revokeExportLink(link)
        ctx.emit(Output(tenant: l.tenant.rawValue, file: l.file, id: l.id)) { "revoked link \(l.id) to \(l.tenant)/\(l.file)" }
    }
}

/// `tresor serve --listen HOST:PORT`.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve published exports to customers through signed links, until SIGTERM or SIGINT (docs/serve.md).")

    @Option(help: "HOST:PORT to listen on (port 0: any free port, printed on start).") var listen = "127.0.0.1:8080"

    func run() throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port),
            colon != listen.startIndex
        else {
            throw CoreError.usage("--listen '\(listen)' is not HOST:PORT", hint: "tresor serve --listen 127.0.0.1:8080")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let installation = try ctx.installation()
        try DownloadServer.run(installation: installation, host: host, port: port) { address in
            // Unbuffered, so a parent reading the port sees it at once.
            FileHandle.standardOutput.write(Data("listening on http://\(address)\n".utf8))
        }
    }
}
