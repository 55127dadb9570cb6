/** The dashboard's stylesheet (served as /ui/app.css): system fonts, no images, readable on a phone. */
export const STYLES = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b636e; --bg: #fff; --line: #d8dde3; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9da7b3; --bg: #0d1117; --line: #30363d; --ok: #3fb950; --bad: #f85149; --warn: #d29922; --accent: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.05rem; margin: 0; }
nav { display: flex; gap: .75rem; }
nav a { color: var(--accent); text-decoration: none; padding: .15rem .3rem; border-radius: 4px; }
nav a.current { background: var(--accent); color: var(--bg); }
#who { margin-left: auto; color: var(--muted); }
main { padding: .75rem 1rem; }
#status { margin: 0; padding: 0 1rem; min-height: 1.3em; color: var(--muted); }
#status.error { color: var(--bad); }
h2 { font-size: 1rem; margin: .5rem 0; }
form.search { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .5rem; align-items: end; margin-bottom: .75rem; }
label { display: flex; flex-direction: column; gap: .15rem; font-size: .85rem; color: var(--muted); }
input, select, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
button { cursor: pointer; }
button.action { border-color: var(--accent); color: var(--accent); }
button:disabled { opacity: .5; cursor: default; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; margin: 0 .25rem .25rem 0; padding: 0 .4rem; border-radius: 999px; border: 1px solid currentColor; font-size: .8rem; text-decoration: none; white-space: nowrap; }
.delivered, .ok { color: var(--ok); }
.dead, .failed, .bad { color: var(--bad); }
.pending, .retry { color: var(--warn); }
.muted { color: var(--muted); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .82rem; }
pre { white-space: pre-wrap; word-break: break-all; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; max-height: 24rem; overflow: auto; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .75rem; margin: .5rem 0 1rem; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-word; }
details { margin: .25rem 0; }
.pager { display: flex; gap: .5rem; margin-top: .75rem; }
body.login main { max-width: 24rem; margin: 10vh auto; }
body.login form { display: flex; flex-direction: column; gap: .75rem; }
.error { color: var(--bad); }
.hint { color: var(--muted); font-size: .85rem; }
@media (max-width: 640px) {
  header { padding: .5rem; }
  main { padding: .5rem; }
  #who { margin-left: 0; width: 100%; order: 5; }
  table.cards thead { display: none; }
  table.cards tr { display: block; border-bottom: 1px solid var(--line); padding: .35rem 0; }
  table.cards td { display: flex; gap: .5rem; border: 0; padding: .1rem 0; }
  table.cards td::before { content: attr(data-label); min-width: 7rem; color: var(--muted); }
  table.cards td.num { text-align: left; }
}
`;
