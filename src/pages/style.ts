/** The one stylesheet of both pages: served by the admin listener, inlined (hashed) in the landing page. */
export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #fff; --card: #f6f8fa; --line: #d0d7de;
  --accent: #0b5cad; --ok: #116329; --bad: #a40e26; --warn: #7d4e00; --focus: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9da7b3; --bg: #0d1117; --card: #161b22;
  --line: #30363d; --accent: #58a6ff; --ok: #3fb950; --bad: #ff7b72; --warn: #d29922; --focus: #58a6ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 80rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0; }
h2 { font-size: 1.3rem; margin: 1.5rem 0 0.5rem; }
h3 { font-size: 1.1rem; margin: 0; overflow-wrap: anywhere; }
a { color: var(--accent); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: 0.5rem; z-index: 1; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.meta { display: flex; flex-wrap: wrap; gap: 0.25rem 1.5rem; align-items: center; margin: 0; }
.note { margin: 1rem 0; padding: 0.75rem 1rem; border-radius: 6px; border: 1px solid var(--line); background: var(--card); }
.note:empty { display: none; }
.note.ok { border-color: var(--ok); }
.note.error { border-color: var(--bad); }
.cards { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 24rem), 1fr)); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 1rem; background: var(--card); }
.card header { display: flex; gap: 0.5rem; align-items: baseline; flex-wrap: wrap; padding: 0; margin: 0 0 0.5rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 0.75rem; margin: 0.5rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 0.5rem; border-radius: 1rem; border: 1px solid currentColor; font-size: 0.85rem; }
.good { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.error-text { color: var(--bad); white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0 0; }
.big { font-size: 1.4rem; font-weight: 600; }
.stats { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; margin: 0.5rem 0; }
.stats div { display: flex; flex-direction: column; }
.stats .label { color: var(--muted); font-size: 0.85rem; }
form.actions { display: flex; flex-wrap: wrap; gap: 0.5rem; margin: 0.5rem 0 0; }
button, input[type=search], input[type=password] { font: inherit; min-height: 2.75rem; border-radius: 6px; }
button { white-space: nowrap; padding: 0.4rem 0.9rem; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button.danger { color: var(--bad); }
table button { min-height: 2.25rem; padding: 0.2rem 0.6rem; font-size: 0.9rem; }
input[type=search], input[type=password] { padding: 0.4rem 0.6rem; border: 1px solid var(--line); background: var(--bg); color: var(--fg); min-width: 0; }
.toolbar { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; margin: 0.5rem 0; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
th, td { text-align: left; padding: 0.4rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--card); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.path code { overflow-wrap: normal; white-space: nowrap; }
td.query { min-width: 14rem; }
td form.actions { flex-wrap: nowrap; margin: 0; }
tbody tr:last-child td { border-bottom: 0; }
ul.routes { padding-left: 1.2rem; }
ul.routes li { margin: 0.4rem 0; }
footer { margin-top: 2rem; padding-bottom: 2rem; color: var(--muted); font-size: 0.9rem; }
@media (max-width: 40rem) { body { font-size: 15px; } th, td { padding: 0.35rem 0.4rem; } }
`;
