"""The dashboard page served at ``GET /dashboard`` (api.routes.dashboard): HTML, CSS and plain
JavaScript in one string, nothing loaded from elsewhere. The script reads the token from
``#token=...`` or ``sessionStorage`` (``#...&report=NAME`` also opens that run's report), fetches ``/runs``, ``/dashboard/runs``, each run folder's
``/dashboard/runs/{name}`` and ``/mixtures`` with it, and draws the charts as inline SVG. Every
drawn series carries ``data-series`` (and its chart ``data-chart`` and ``data-run`` or
``data-mixture``), which the headless-browser test counts."""

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>midtrain dashboard</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;margin-top:1.8rem}h3{font-size:1rem;margin:.8rem 0 .3rem}
table{border-collapse:collapse;font-size:.82rem;margin:.3rem 0 .8rem}th,td{border:1px solid #ccc;padding:.15rem .45rem;text-align:left}
th{background:#f3f3f3}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
.charts{display:flex;flex-wrap:wrap;gap:.8rem}.note{color:#555;font-size:.85rem}.error{color:#b00020}
svg{background:#fff;border:1px solid #eee}svg text{font-size:10px;fill:#444}
iframe{width:100%;height:80vh;border:1px solid #ccc}button{margin-left:.4rem}
</style></head><body>
<h1>midtrain dashboard</h1>
<form id="auth"><label>API token <input id="token" type="password" autocomplete="off" size="40"></label>
<button type="submit">use</button> <span id="status" class="note"></span></form>
<h2>Jobs</h2><div id="jobs" class="note">…</div>
<h2>Runs</h2><div id="runs" class="note">…</div>
<h2>Mixtures</h2><div id="mixtures" class="note">…</div>
<h2>Report</h2><div id="report" class="note">Choose "open report" on a run.</div>
<script>
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const COLORS = {web:"#4477aa", code:"#ee6677", math:"#228833", instruction:"#ccbb44", reasoning:"#66ccee",
                synthetic:"#aa3377", overall:"#000000", lr:"#4477aa"};
const EXTRA = ["#332288","#117733","#882255","#999933","#44aa99","#cc6677","#88ccee","#ddcc77"];
function color(name, index){ return COLORS[name] || EXTRA[index % EXTRA.length]; }

// #token=...&report=NAME: a token to keep for this tab, and a run whose report to open at once
const fragment = new URLSearchParams(location.hash.slice(1));
function readToken(){
  if (fragment.has("token")){
    sessionStorage.setItem("midtrain-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);  // the token leaves the URL bar
  }
  return sessionStorage.getItem("midtrain-token") || "";
}
let token = readToken();

async function api(path){
  const response = await fetch(path, {headers: token ? {"Authorization": "Bearer " + token} : {}});
  if (response.status === 401) throw new Error("the API wants a valid token (type it above)");
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response;
}
async function json(path){ return (await api(path)).json(); }

function el(tag, attributes, ...children){
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}
function svgEl(tag, attributes){
  const node = document.createElementNS(SVGNS, tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  return node;
}
function table(rows){
  if (!rows.length) return el("p", {class: "note"}, "(none)");
  const columns = [...new Set(rows.flatMap(row => Object.keys(row)))];
  const body = rows.map(row => el("tr", {}, ...columns.map(column => el("td", {}, format(row[column])))));
  return el("table", {}, el("thead", {}, el("tr", {}, ...columns.map(column => el("th", {}, column)))),
            el("tbody", {}, ...body));
}
function format(value){
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : value.toPrecision(4);
  return String(value);
}

// A line chart: series = [{name, tokens, values}], phases = [{name, start}] marked dashed.
function lineChart(chart, run, title, series, phases, logY){
  const width = 520, height = 240, left = 50, right = 110, top = 22, bottom = 30;
  const svg = svgEl("svg", {width, height, viewBox: `0 0 ${width} ${height}`, "data-chart": chart, "data-run": run});
  const drawn = series.filter(s => s.tokens.length);
  const xs = drawn.flatMap(s => s.tokens), ys = drawn.flatMap(s => s.values).filter(v => !logY || v > 0);
  const t = svgEl("text", {x: left, y: 14}); t.textContent = title; svg.append(t);
  if (!xs.length) return svg;
  const xMax = Math.max(...xs) || 1;
  const f = logY ? Math.log : (v => v);
  let yMin = f(Math.min(...ys)), yMax = f(Math.max(...ys));
  if (yMax === yMin){ yMax += 1; yMin -= 1; }
  const X = x => left + (width - left - right) * x / xMax;
  const Y = y => top + (height - top - bottom) * (1 - (f(y) - yMin) / (yMax - yMin));
  svg.append(svgEl("line", {x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, stroke: "#999"}));
  svg.append(svgEl("line", {x1: left, y1: top, x2: left, y2: height - bottom, stroke: "#999"}));
  for (const [value, y] of [[Math.max(...ys), top], [Math.min(...ys), height - bottom]]){
    const label = svgEl("text", {x: 2, y: y + 3}); label.textContent = format(value); svg.append(label);
  }
  const end = svgEl("text", {x: width - right - 30, y: height - 8}); end.textContent = format(xMax) + " tok"; svg.append(end);
  phases.forEach((phase, index) => {
    if (index) svg.append(svgEl("line", {x1: X(phase.start), x2: X(phase.start), y1: top, y2: height - bottom,
                                          stroke: "#888", "stroke-dasharray": "4 3", "data-phase": phase.name}));
    const label = svgEl("text", {x: X(phase.start) + 2, y: top + 9}); label.textContent = phase.name; svg.append(label);
  });
  drawn.forEach((s, index) => {
    const points = s.tokens.map((x, i) => [x, s.values[i]]).filter(p => !logY || p[1] > 0)
                            .map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", {points, fill: "none", stroke: color(s.name, index), "stroke-width": s.name === "overall" ? 1.6 : 1,
                                  "data-series": `${chart}:${s.name}`, "data-points": s.tokens.length}));
    const label = svgEl("text", {x: width - right + 6, y: top + 12 * index + 10, fill: color(s.name, index)});
    label.textContent = s.name; svg.append(label);
  });
  return svg;
}

// Stacked horizontal bars: rows = [{label, parts: {name: share}}], shares of 1.
function stackedBars(chart, attributes, title, rows){
  const width = 520, barHeight = 16, gap = 6, left = 150, top = 22, right = 110;
  const names = [...new Set(rows.flatMap(row => Object.keys(row.parts)))].sort();
  const height = top + rows.length * (barHeight + gap) + 10;
  const svg = svgEl("svg", {width, height: Math.max(height, 22 + 12 * names.length), "data-chart": chart, ...attributes});
  const t = svgEl("text", {x: 4, y: 14}); t.textContent = title; svg.append(t);
  rows.forEach((row, r) => {
    const y = top + r * (barHeight + gap);
    const label = svgEl("text", {x: 4, y: y + 12}); label.textContent = row.label; svg.append(label);
    const total = Object.values(row.parts).reduce((a, b) => a + b, 0) || 1;
    let x = left;
    names.forEach((name, index) => {
      const share = (row.parts[name] || 0) / total;
      if (share <= 0) return;
      const w = (width - left - right) * share;
      const rect = svgEl("rect", {x, y, width: w, height: barHeight, fill: color(name, index),
                                  "data-series": `${chart}:${row.label}:${name}`, "data-share": share.toFixed(4)});
      const tip = svgEl("title"); tip.textContent = `${name} ${(100 * share).toFixed(1)}%`; rect.append(tip);
      svg.append(rect); x += w;
    });
  });
  names.forEach((name, index) => {
    const label = svgEl("text", {x: width - right + 6, y: top + 12 * index + 10, fill: color(name, index)});
    label.textContent = name; svg.append(label);
  });
  return svg;
}

function runCard(data){
  const card = el("div", {class: "card", "data-run": data.name});
  const heading = el("h3", {}, data.name + (data.recipe ? ` (recipe ${data.recipe})` : ""));
  if (data.has_report){
    const button = el("button", {type: "button", "data-report": data.name}, "open report");
    button.addEventListener("click", () => openReport(data.name));
    heading.append(button);
  }
  card.append(heading);
  const charts = el("div", {class: "charts"});
  const loss = [{name: "overall", ...data.loss},
                ...Object.entries(data.loss_by_domain).map(([name, s]) => ({name, ...s}))];
  charts.append(lineChart("loss", data.name, "loss against tokens (overall and per domain)", loss, data.phases, false));
  charts.append(lineChart("lr", data.name, "learning rate against tokens", [{name: "lr", ...data.lr}], data.phases, false));
  if (data.composition.length){
    const rows = data.composition.flatMap(phase => [{label: `${phase.phase} target`, parts: phase.target},
                                                    {label: `${phase.phase} realised`, parts: phase.realised}]);
    charts.append(stackedBars("composition", {"data-run": data.name}, "composition per phase by domain", rows));
  }
  card.append(charts);
  const evaluation = data.evaluation;
  if (evaluation.passkey.length){ card.append(el("h3", {}, "passkey retrieval"), table(evaluation.passkey)); }
  if (evaluation.fim.length){ card.append(el("h3", {}, "FIM exact match"), table(evaluation.fim)); }
  const missing = Object.entries(data.missing || {}).filter(([key]) => key !== "corpus");
  if (missing.length) card.append(el("p", {class: "note"}, "missing: " + missing.map(([k, v]) => `${k}: ${v}`).join("; ")));
  return card;
}

async function openReport(name){
  const target = document.getElementById("report");
  try {
    const html = await (await api(`/dashboard/runs/${encodeURIComponent(name)}/report`)).text();
    // the report has no script: a sandboxed frame of its text shows it whole, origin-less
    const frame = el("iframe", {sandbox: "", "data-report-frame": name});
    frame.srcdoc = html;
    target.replaceChildren(el("p", {}, "report of " + name), frame);
    target.scrollIntoView();
  } catch (error){ target.replaceChildren(el("p", {class: "error"}, String(error.message || error))); }
}

async function showJobs(){
  const page = await json("/runs?limit=20");
  document.getElementById("jobs").replaceChildren(table(page.items.map(job => ({
    id: job.id, kind: job.kind, status: job.status, output: job.output, created: job.created_at}))));
}
async function showRuns(){
  const target = document.getElementById("runs");
  const page = await json("/dashboard/runs?limit=12");
  if (!page.items.length){ target.replaceChildren(el("p", {class: "note"}, "no run folders under the runs root")); return; }
  target.replaceChildren(el("p", {class: "note"}, `${page.total} run folder(s); newest first`));
  for (const folder of page.items){
    try { target.append(runCard({...(await json(`/dashboard/runs/${encodeURIComponent(folder.name)}?max_points=300`)),
                                 has_report: folder.has_report})); }
    catch (error){ target.append(el("p", {class: "error"}, `${folder.name}: ${error.message || error}`)); }
  }
}
async function showMixtures(){
  const target = document.getElementById("mixtures");
  const page = await json("/mixtures?limit=50");
  if (!page.items.length){ target.replaceChildren(el("p", {class: "note"}, "no saved mixtures")); return; }
  target.replaceChildren();
  for (const record of page.items){
    const phases = (record.spec.phases || []).map(phase => {
      const parts = {};
      for (const source of phase.sources || []) parts[source.name] = (parts[source.name] || 0) + Number(source.weight || 0);
      return {label: `${phase.name} (${format(phase.tokens)})`, parts};
    });
    const card = el("div", {class: "card", "data-mixture": record.name});
    card.append(el("h3", {}, `${record.name} v${record.version}`),
                stackedBars("mixture", {"data-mixture": record.name}, "target weights per phase by source", phases));
    target.append(card);
  }
}

async function load(){
  const status = document.getElementById("status");
  status.textContent = "loading…";
  const results = await Promise.allSettled([showJobs(), showRuns(), showMixtures()]);
  const failed = results.filter(result => result.status === "rejected");
  status.textContent = failed.length ? failed[0].reason.message : "loaded";
  status.className = failed.length ? "error" : "note";
  document.body.setAttribute("data-loaded", failed.length ? "error" : "ok");
  if (!failed.length && fragment.has("report")) await openReport(fragment.get("report"));
}
document.getElementById("token").value = token;
document.getElementById("auth").addEventListener("submit", event => {
  event.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("midtrain-token", token);
  load();
});
load();
</script></body></html>
"""
