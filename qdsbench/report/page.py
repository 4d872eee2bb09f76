"""The report page: HTML skeleton, style and the shared JS helpers; each view's JS lives in its own module."""

from __future__ import annotations

from qdsbench.report.view_compare import COMPARE_JS
from qdsbench.report.view_papers import PAPERS_JS
from qdsbench.report.view_runs import RUNS_JS
from qdsbench.report.view_studies import STUDIES_JS


def page() -> str:
    """The page with %PLOTLY% (plotly.js) and %DATA% (the JSON payload) still to fill in."""
    return SKELETON.replace("%SCRIPT%", "\n".join([COMMON_JS, RUNS_JS, COMPARE_JS, STUDIES_JS, PAPERS_JS, INIT_JS]))


# ruff: noqa: E501  (the embedded HTML/CSS/JS)
SKELETON = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qdsbench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:100vw;box-sizing:border-box}
h1{margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}nav a{margin-right:1em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#f2f2f2;position:sticky;top:0}th.override{background:#e8eefc}.filters select,.filters label{margin-right:1em}
.badge{padding:1px 6px;border-radius:8px;color:#fff;font-size:11px}.ok{background:#2e7d32}.bad{background:#c62828}.na{background:#888}
.plot{width:100%;height:420px}.plot-row{display:flex;flex-wrap:wrap;gap:1em}.plot.half{flex:1 1 480px;width:auto;height:340px}
.status-failed{color:#c62828}.status-running{color:#ef6c00}tr.hidden-run{background:#fff8e1}
.scroll{overflow-x:auto;max-width:100%}.note{color:#555;font-size:13px;margin:.2em 0}
.best{background:#e8f5e9;border:1px solid #a5d6a7;padding:.5em .8em;margin:.5em 0;display:inline-block}tr.best-trial{background:#e8f5e9}
td.run-name{white-space:normal;min-width:16em;max-width:30em}#compare-table td{white-space:normal;word-break:break-word;max-width:44vw}nav#paper-nav a.current{font-weight:bold}
td.pick button{font-size:11px;padding:0 4px;margin-right:2px}.diff-a{color:#1565c0}.diff-b{color:#6a1b9a}
img{max-width:240px;margin:4px;border:1px solid #ddd}code{background:#f5f5f5;padding:0 3px}
</style><script>%PLOTLY%</script></head><body>
<h1>qdsbench report</h1>
<nav><a href="#runs-section">runs</a><a href="#groups-section">groups</a><a href="#curves-section">learning curves</a><a href="#compare-section">compare two runs</a><a href="#studies-section">hyperparameter studies</a><a href="#papers-section">papers</a><a href="#figures-section">figures</a></nav>
<p id="summary"></p>
<section id="runs-section"><h2>Runs</h2><div class="filters" id="filters"></div>
<p class="note">Runs are named by experiment, the overrides that differ between runs, and seed; blue columns are those overrides (empty: the default). Debug and smoke runs (a <code>debug=</code> override, a debug/smoke tag, a smoke experiment) are hidden unless shown.</p>
<div class="scroll"><table id="runs"><thead></thead><tbody></tbody></table></div></section>
<section id="groups-section"><h2>Groups: mean &plusmn; std over distinct seeds</h2>
<p class="note">A group is a config (everything but seed and bookkeeping); a seed run twice is averaged first, so n counts distinct seeds. Finished runs only.</p>
<label>metric <select id="group-metric"></select></label>
<div class="scroll"><table id="groups"><thead></thead><tbody></tbody></table></div>
<div id="fig-groups" class="plot"></div></section>
<section id="curves-section"><h2>Learning curves</h2><label>metric <select id="curve-metric"></select></label>
<label>x axis <select id="curve-x"><option>step</option><option>epoch</option></select></label>
<div id="fig-curves" class="plot"></div></section>
<section id="compare-section"><h2>Compare two runs</h2>
<div class="filters"><label>A <select id="compare-a"></select></label><label>B <select id="compare-b"></select></label><label>curve <select id="compare-metric"></select></label></div>
<div id="compare-diff"></div><div id="fig-compare" class="plot"></div></section>
<section id="studies-section"><h2>Hyperparameter studies</h2><div id="studies"></div></section>
<section id="papers-section"><h2>Papers: campaign tables</h2><nav id="paper-nav"></nav><div id="papers"></div></section>
<section id="figures-section"><h2>Attention maps and figures</h2><div id="images"></div></section>
<script>
%SCRIPT%
</script></body></html>
"""

COMMON_JS = """
const DATA = %DATA%;
DATA.runs.forEach((r,i)=>{r.idx=i;});
const FILTERS = ["experiment","task","dataset","model","backend","status"];
const state = {filters:{}, showHidden:false};
const $ = id => document.getElementById(id);
function esc(v){return String(v).replace(/[&<>"']/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));}
function fmt(v){
  if(v===null||v===undefined||v==="")return "—";
  if(typeof v==="number"){if(Number.isInteger(v))return String(v);const a=Math.abs(v);return String(a>=1e-3&&a<1e4?+v.toFixed(4):+v.toPrecision(4));}
  return esc(typeof v==="object"?JSON.stringify(v):v);
}
function td(v){return `<td>${fmt(v)}</td>`;}
function shown(){return DATA.runs.filter(r=>(state.showHidden||!r.hidden)&&FILTERS.every(k=>!state.filters[k]||String(r[k])===state.filters[k]));}
function differing(rows){
  const known=rows.filter(r=>r.overrides);
  const keys=[...new Set(known.flatMap(r=>Object.keys(r.overrides)))].sort();
  return keys.filter(k=>new Set(known.map(r=>r.overrides[k]??null)).size>1);
}
function axis(text){return {title:{text:text},automargin:true};}
function plot(id,traces,layout){
  if(layout.height)$(id).style.height=layout.height+"px";
  Plotly.react(id,traces,Object.assign({margin:{t:30,r:20},legend:{orientation:"h",y:-0.25}},layout));
}
function fillSelect(id,values,labels){$(id).innerHTML=values.map((v,i)=>`<option value="${esc(v)}">${esc(labels?labels[i]:v)}</option>`).join("");}
function curveMetrics(){
  const names=[...new Set(Object.values(DATA.curves).flatMap(c=>Object.keys(c)))];
  const rank=m=>["val/acc","val/loss","val/mse","train/loss_epoch","train/loss"].indexOf(m);
  return names.sort((a,b)=>((rank(a)<0?99:rank(a))-(rank(b)<0?99:rank(b)))||a.localeCompare(b));
}
function trace(r,metric,x,extra){
  const pts=(DATA.curves[r.run_dir]||{})[metric]||[];const i=x==="epoch"?1:0;const keep=pts.filter(p=>p[i]!==null);
  return Object.assign({x:keep.map(p=>p[i]),y:keep.map(p=>p[2]),mode:"lines+markers",name:r.name},extra||{});
}
"""

INIT_JS = """
function renderAll(){renderRuns();renderGroups();renderCurves();
  const hidden=DATA.runs.filter(r=>r.hidden).length;
  $("summary").textContent=`${shown().length} of ${DATA.runs.length} runs shown`+(hidden?` (${hidden} debug/smoke runs ${state.showHidden?"shown":"hidden"})`:"");}
function init(){
  buildFilters();
  const curves=curveMetrics();
  fillSelect("curve-metric",curves);fillSelect("compare-metric",curves);fillSelect("group-metric",DATA.metrics.slice(0,12));
  $("curve-metric").onchange=renderCurves;$("curve-x").onchange=()=>{renderCurves();renderCompare();};
  $("group-metric").onchange=renderGroups;
  initCompare();renderStudies();renderPapers();renderImages();renderAll();
}
init();
"""
