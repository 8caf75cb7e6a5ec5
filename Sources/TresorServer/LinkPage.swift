import Foundation
import Mustache

/// The page a person sees at a download link: what the file is, its size and SHA-256, and a
/// download button. A Mustache template; every value goes through `{{…}}`, which HTML-escapes
/// it (the template has no `{{{…}}}`).
enum LinkPage {
    struct View {
        let tenant: String
        let file: String
        /// `6 bytes`, or `1.5 GiB (1610612736 bytes)`.
        let size: String
        let sha256: String
        let expires: String
        let downloadURL: String
        let accessLogURL: String
    }

    static let template: MustacheTemplate = {
        do {
            return try MustacheTemplate(string: text)
        } catch {
            // The template is a constant of this file; a parse error is a programming error a test catches.
            fatalError("the download page template does not parse: \(error)")
        }
    }()

    static func render(_ view: View) -> String { template.render(view) }

    static let text = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{file}}: export of {{tenant}}</title>
        <style>
        body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
        main { max-width: 44rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem 2.5rem;
               box-shadow: 0 1px 4px rgba(0,0,0,.12); }
        h1 { font-size: 1.4rem; margin: 0 0 .3rem; word-break: break-all; }
        p.lead { color: #555c6b; margin: 0 0 1.5rem; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .5rem 1.2rem; margin: 0 0 1.8rem; }
        dt { font-weight: 600; }
        dd { margin: 0; }
        code { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
        a.button { display: inline-block; background: #1f5fbf; color: #fff; text-decoration: none; padding: .7rem 1.4rem;
                   border-radius: 6px; font-weight: 600; }
        a.button:hover { background: #174a96; }
        p.small { font-size: .85rem; color: #555c6b; margin-top: 1.5rem; }
        </style>
        </head>
        <body>
        <main>
        <h1>{{file}}</h1>
        <p class="lead">An export of everything tenant <strong>{{tenant}}</strong> keeps with Tresor: a BagIt bag of its documents and database.</p>
        <dl>
        <dt>Size</dt><dd>{{size}}</dd>
        <dt>SHA-256</dt><dd><code>{{sha256}}</code></dd>
        <dt>Link valid until</dt><dd>{{expires}}</dd>
        </dl>
        <a class="button" href="{{downloadURL}}" download>Download</a>
        <p class="small">Check the download with <code>sha256sum {{file}}</code>. With curl, <code>curl -C - -o {{file}} 'LINK'</code>
        resumes a broken download. <a href="{{accessLogURL}}">Downloads of this tenant's exports</a> (JSON lines).</p>
        </main>
        </body>
        </html>

        """
}
