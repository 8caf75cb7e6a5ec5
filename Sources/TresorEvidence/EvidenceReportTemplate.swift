/// The report's Mustache template. Every value is written with `{{…}}` (HTML-escaped); the
/// unescaped forms are never used. Inline CSS and SVG only: the page needs no network.
enum EvidenceReportTemplate {
    static let text = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
        <title>Restore evidence · {{monthName}}</title>
        <style>
        :root { --ink:#1f2933; --muted:#5f6b7a; --line:#d9dee5; --bg:#f5f7fa; --pass:#17663a; --pass-bg:#e3f3e8;
          --fail:#a8231c; --fail-bg:#fbe4e2; --warn:#8a5a00; --warn-bg:#fdf1d6; --none:#8a94a3; --none-bg:#eef1f5; --accent:#1d4e89; }
        * { box-sizing: border-box; }
        body { margin:0; background:var(--bg); color:var(--ink); font:14px/1.45 "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
        main { max-width:1180px; margin:0 auto; padding:28px 32px 48px; }
        header { display:flex; justify-content:space-between; align-items:flex-end; border-bottom:3px solid var(--accent); padding-bottom:14px; }
        h1 { font-size:24px; margin:0 0 4px; letter-spacing:-0.01em; }
        h2 { font-size:16px; margin:32px 0 10px; color:var(--accent); text-transform:uppercase; letter-spacing:0.06em; }
        .sub { color:var(--muted); }
        .meta { text-align:right; color:var(--muted); font-size:12.5px; }
        .meta b { color:var(--ink); font-weight:600; }
        .banner { margin:18px 0 0; padding:12px 16px; border-radius:6px; border:1px solid; display:flex; gap:14px; align-items:flex-start; }
        .banner.ok { background:var(--pass-bg); border-color:#b6dcc2; }
        .banner.bad { background:var(--fail-bg); border-color:#efb7b2; }
        .banner .mark { font-size:20px; line-height:1; font-weight:700; }
        .banner.ok .mark { color:var(--pass); } .banner.bad .mark { color:var(--fail); }
        .mono { font-family:"DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; word-break:break-all; }
        .cards { display:grid; grid-template-columns:repeat(5, 1fr); gap:12px; margin-top:20px; }
        .card { background:#fff; border:1px solid var(--line); border-top:4px solid var(--none); border-radius:6px; padding:12px 14px; }
        .card.good { border-top-color:var(--pass); } .card.bad { border-top-color:var(--fail); } .card.warn { border-top-color:#d49a1c; }
        .card .label { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:0.04em; }
        .card .value { font-size:22px; font-weight:650; margin:4px 0 2px; }
        .card.bad .value { color:var(--fail); }
        .card .detail { font-size:12px; color:var(--muted); }
        table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:6px; overflow:hidden; }
        th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:middle; }
        th { background:#eef2f7; font-size:11.5px; text-transform:uppercase; letter-spacing:0.04em; color:var(--muted); font-weight:600; }
        tr:last-child td { border-bottom:none; }
        td.m, th.m { text-align:center; padding:6px 2px; width:44px; }
        .cell { display:inline-block; min-width:34px; padding:2px 4px; border-radius:4px; font-weight:600; font-size:12.5px; text-align:center; }
        .cell.pass { background:var(--pass-bg); color:var(--pass); }
        .cell.fail { background:var(--fail-bg); color:var(--fail); }
        .cell.mixed { background:var(--warn-bg); color:var(--warn); }
        .cell.none { color:var(--none); }
        tr.late td { background:#fff6f5; }
        tr.late td:first-child { box-shadow:inset 4px 0 0 var(--fail); }
        tr.former td { color:var(--muted); }
        .tenant { font-weight:600; }
        .pill { display:inline-block; padding:2px 9px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
        .pill.pass { background:var(--pass-bg); color:var(--pass); }
        .pill.fail { background:var(--fail-bg); color:var(--fail); }
        .pill.none { background:var(--none-bg); color:var(--muted); }
        .bad { color:var(--fail); font-weight:600; } .warn { color:var(--warn); font-weight:600; }
        svg.spark { display:inline-block; vertical-align:middle; }
        .peak { font-size:11.5px; color:var(--muted); margin-left:6px; vertical-align:middle; }
        svg.spark .line { fill:none; stroke:var(--accent); stroke-width:1.5; }
        svg.spark .ref { stroke:#9aa5b1; stroke-width:1; stroke-dasharray:3 3; }
        svg.spark .fast { fill:var(--accent); } svg.spark .slow { fill:#d49a1c; } svg.spark .over { fill:var(--fail); }
        ul.problems { margin:4px 0 0; padding-left:18px; color:var(--fail); font-size:12.5px; }
        .small { font-size:12px; color:var(--muted); }
        .nw { white-space:nowrap; }
        ul.clauses { margin:0; padding-left:16px; }
        footer { margin-top:36px; padding-top:14px; border-top:1px solid var(--line); color:var(--muted); font-size:12.5px; }
        code { font-family:"DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; background:#eef1f5; padding:1px 4px; border-radius:3px; }
        @media print { body { background:#fff; } main { padding:0; } .card, table { break-inside:avoid; } }
        </style>
        </head>
        <body>
        <main>
        <header>
          <div>
            <h1>Restore drills and backup controls</h1>
            <div class="sub">Evidence report for <b>{{monthName}}</b>, from the signed evidence log</div>
          </div>
          <div class="meta">
            <div>Generated <b>{{generatedAt}}</b></div>
            <div>Controls evaluated as of <b>{{asOf}}</b></div>
          </div>
        </header>

        {{#chainIntact}}
        <div class="banner ok" id="chain"><div class="mark">✓</div><div><b>Evidence chain verified.</b> {{chainSummary}}, every signature and hash link checked with the public key below; last record {{headSeq}}.
        <div class="small">Public key fingerprint (SHA-256): <span class="mono">{{fingerprint}}</span></div></div></div>
        {{/chainIntact}}
        {{^chainIntact}}
        <div class="banner bad" id="chain"><div class="mark">✗</div><div><b>Evidence chain does not verify.</b> {{chainSummary}}. {{chainProblem}}
        <div class="small">Public key fingerprint (SHA-256): <span class="mono">{{fingerprint}}</span></div></div></div>
        {{/chainIntact}}

        <section class="cards">
        {{#cards}}
          <div class="card {{cls}}"><div class="label">{{label}}</div><div class="value">{{value}}</div><div class="detail">{{detail}}</div></div>
        {{/cards}}
        </section>

        <h2>Drill results per tenant, last 12 months</h2>
        <table id="tenants">
          <thead><tr><th>Tenant</th><th>Control</th><th>Last pass</th><th>Age</th>{{#months}}<th class="m">{{.}}</th>{{/months}}<th>Slowest restore, 12 months</th></tr></thead>
          <tbody>
        {{#tenants}}
            <tr class="{{rowClass}}"><td class="tenant">{{name}}</td><td><span class="pill {{stateClass}}">{{stateLabel}}</span></td><td>{{lastPass}}</td><td>{{age}}</td>{{#cells}}<td class="m"><span class="cell {{cls}}" title="{{title}}">{{text}}</span></td>{{/cells}}<td class="nw">{{#spark}}<svg class="spark" width="140" height="30" viewBox="0 0 140 30" role="img" aria-label="{{label}}"><title>{{label}}</title><line class="ref" x1="0" x2="140" y1="{{refY}}" y2="{{refY}}"/><polyline class="line" points="{{points}}"/>{{#dots}}<circle class="{{cls}}" cx="{{x}}" cy="{{y}}" r="2.6"><title>{{title}}</title></circle>{{/dots}}</svg><span class="peak {{peakClass}}">max {{peak}}</span>{{/spark}}{{^spark}}<span class="small">no restore</span>{{/spark}}</td></tr>
        {{/tenants}}
        {{#noTenants}}<tr><td colspan="17" class="small">No tenants.</td></tr>{{/noTenants}}
          </tbody>
        </table>
        <p class="small">✓ passed · ✗ failed (a number counts several drills) · · no drill. A tenant is overdue when its last passing drill is older than {{maxAge}}; a drill with any check not run never counts as a pass. Self-test drills on deliberately damaged copies are listed below but never count as a tenant's restore test.</p>

        <h2>Controls and the clauses they evidence</h2>
        <table id="controls">
          <thead><tr><th style="width:24%">Control</th><th style="width:24%">Clause</th><th>Evidence in {{monthName}}</th><th style="width:92px">Status</th></tr></thead>
          <tbody>
        {{#controls}}
            <tr><td><b>{{control}}</b></td><td><ul class="clauses">{{#clauses}}<li>{{.}}</li>{{/clauses}}</ul></td><td>{{evidence}}</td><td><span class="pill {{statusClass}}">{{statusLabel}}</span></td></tr>
        {{/controls}}
          </tbody>
        </table>
        <p class="small">Promised: every restore within {{promiseRTO}}, over {{promiseShare}} within {{promiseTypical}}; data loss under {{promiseRPO}}; every tenant tested monthly, none older than {{maxAge}}.</p>

        <h2>Drills in {{monthName}}</h2>
        <table id="drills">
          <thead><tr><th>Record</th><th>Tenant</th><th>Target</th><th>Result</th><th>RTO</th><th>RPO</th><th>Restored</th><th>Time split</th></tr></thead>
          <tbody>
        {{#drills}}
            <tr><td>{{seq}}<div class="small">{{time}}</div></td><td class="tenant">{{tenant}}</td><td>{{target}}</td><td><span class="pill {{resultClass}}">{{resultLabel}}</span>{{#hasProblems}}<ul class="problems">{{#problems}}<li><b>{{name}}</b> {{statusLabel}}: {{reason}}</li>{{/problems}}</ul>{{/hasProblems}}</td><td class="nw {{rtoClass}}">{{rto}}</td><td class="nw {{rpoClass}}">{{rpo}}</td><td>{{restored}}</td><td class="small">{{split}}<div>{{versions}}</div></td></tr>
        {{/drills}}
        {{#noDrills}}<tr><td colspan="8" class="small">No drills recorded in {{monthName}}.</td></tr>{{/noDrills}}
          </tbody>
        </table>

        {{#hasInvalid}}
        <h2>Unreadable drill records</h2>
        <table id="invalid"><thead><tr><th>Record</th><th>Why it was not counted</th></tr></thead><tbody>
        {{#invalid}}<tr><td>{{seq}}</td><td class="bad">{{reason}}</td></tr>{{/invalid}}
        </tbody></table>
        {{/hasInvalid}}

        <footer>
          <p><b>Check this report yourself.</b> Every figure comes from records of the evidence log (<code>HOME/evidence/log.jsonl</code>) that verified with the public key whose SHA-256 fingerprint is <span class="mono">{{fingerprint}}</span>; head record {{headSeq}}, hash <span class="mono">{{headHash}}</span>.
          Verify a copy of the log without Tresor: <code>python3 verify-evidence.py log.jsonl evidence.pub</code>, or with Tresor: <code>tresor evidence verify --log log.jsonl --public-key evidence.pub</code>. The record format is specified in docs/evidence.md.</p>
        </footer>
        </main>
        </body>
        </html>
        """#
}
