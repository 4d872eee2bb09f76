"""A self-contained static HTML dashboard (plotly inlined; works from file:// with no server)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from qdsbench.report.collect import grouped

TABLE_COLUMNS = ["run", "dataset", "model", "backend", "seed", "status"]
CURVE_METRICS = ("val/acc", "val/loss", "train/loss_epoch", "train/loss")
MAX_IMAGES = 24


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def _runs_payload(runs: pd.DataFrame, metrics: list[str]) -> list[dict[str, Any]]:
    payload = []
    for _, row in runs.iterrows():
        entry = {"run": Path(str(row["run_dir"])).name if "/multiruns/" not in str(row["run_dir"])
                 else "/".join(Path(str(row["run_dir"])).parts[-2:]),
                 "run_dir": str(row["run_dir"])}
        for column in ("dataset", "model", "backend", "seed", "status", "experiment"):
            entry[column] = _clean(row.get(column)) if column in row else None
        entry["metrics"] = {m: _clean(row.get(f"metric.{m}")) for m in metrics}
        payload.append(entry)
    return payload


def _curves(history: pd.DataFrame) -> dict[str, dict[str, list]]:
    curves: dict[str, dict[str, list]] = {}
    if history.empty:
        return curves
    keep = history[history["metric"].isin(CURVE_METRICS)]
    for (run_dir, metric), frame in keep.groupby(["run_dir", "metric"]):
        frame = frame.sort_values("step")
        curves.setdefault(str(run_dir), {})[metric] = [[_clean(s), _clean(v)] for s, v in zip(frame["step"],
                                                                                             frame["value"])]
    return curves


def _paper_tables(results_dir: Path) -> list[dict[str, Any]]:
    tables = []
    for expected in sorted(results_dir.glob("*/expected.csv")):
        for path in sorted(expected.parent.glob("*.csv")):
            if path.name in ("expected.csv",) or path.name.startswith("expressivity"):
                continue
            frame = pd.read_csv(path)
            if not any(c.endswith(":verdict") for c in frame.columns):  # campaign tables (qdsbench.campaign.tables)
                continue
            title_md = path.with_suffix(".md")
            title = title_md.read_text().splitlines()[0].lstrip("# ") if title_md.is_file() else path.stem
            tables.append({"paper": expected.parent.name, "name": path.stem, "title": title,
                           "columns": list(frame.columns),
                           "rows": [[_clean(v) for v in row] for row in frame.itertuples(index=False)]})
    return tables


def _images(runs: pd.DataFrame) -> list[dict[str, str]]:
    images = []
    for run_dir in runs.get("run_dir", []):
        for png in sorted(Path(str(run_dir)).rglob("*.png"))[:4]:
            if png.stat().st_size < 2_000_000 and len(images) < MAX_IMAGES:
                images.append({"run": Path(str(run_dir)).name, "name": png.name,
                               "data": base64.b64encode(png.read_bytes()).decode()})
    return images


def _metrics(runs: pd.DataFrame) -> list[str]:
    names = sorted(c[len("metric."):] for c in runs.columns if c.startswith("metric."))
    preferred = [m for m in ("test/acc", "val/acc", "test/mse", "test/mae", "val/loss") if m in names]
    return preferred + [m for m in names if m not in preferred and not m.startswith(("attn/", "lr-"))]


def build_payload(runs: pd.DataFrame, history: pd.DataFrame, results_dir: Path) -> dict[str, Any]:
    metrics = _metrics(runs) if not runs.empty else []
    groups = {}
    for metric in metrics[:6]:
        frame = grouped(runs, metric)
        groups[metric] = [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return {"runs": _runs_payload(runs, metrics) if not runs.empty else [], "metrics": metrics,
            "curves": _curves(history), "groups": groups, "paper_tables": _paper_tables(results_dir),
            "images": _images(runs) if not runs.empty else []}


def render(payload: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    data = json.dumps(payload).replace("</", "<\\/")
    return TEMPLATE.replace("%PLOTLY%", get_plotlyjs()).replace("%DATA%", data)


# ruff: noqa: E501  (the embedded HTML/JS template)
TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qdsbench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{margin:.2em 0}h2{margin-top:1.4em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}.filters select{margin-right:1em}.badge{padding:1px 6px;border-radius:8px;color:#fff}
.ok{background:#2e7d32}.bad{background:#c62828}.na{background:#888}.plot{width:100%;height:380px}
.status-failed{color:#c62828}.status-running{color:#ef6c00}img{max-width:240px;margin:4px;border:1px solid #ddd}
.scroll{overflow-x:auto;max-width:100%}
</style><script>%PLOTLY%</script></head><body>
<h1>qdsbench report</h1><p id="summary"></p>
<h2>Runs</h2><div class="filters" id="filters"></div>
<table id="runs"><thead></thead><tbody></tbody></table>
<h2>Learning curves</h2><label>metric <select id="curve-metric"></select></label>
<div id="curves" class="plot"></div>
<h2>Mean &plusmn; std over seeds</h2><label>metric <select id="bar-metric"></select></label>
<div id="bars" class="plot"></div>
<h2>Paper vs ours</h2><div id="paper"></div>
<h2>Attention maps and figures</h2><div id="images"></div>
<script>
const DATA = %DATA%;
const FILTERS = ["dataset","model","backend","seed","status"];
const state = {};
function uniq(key){return [...new Set(DATA.runs.map(r=>String(r[key])))].sort();}
function filtered(){return DATA.runs.filter(r=>FILTERS.every(k=>!state[k]||String(r[k])===state[k]));}
function fmt(v){return v===null||v===undefined?"—":(typeof v==="number"?(Math.abs(v)<1e4?+v.toFixed(4):v):v);}
function buildFilters(){
  const box=document.getElementById("filters");
  FILTERS.forEach(k=>{const s=document.createElement("select");s.id="filter-"+k;
    s.innerHTML=`<option value="">all ${k}</option>`+uniq(k).map(v=>`<option>${v}</option>`).join("");
    s.onchange=()=>{state[k]=s.value;renderAll();};box.appendChild(s);});
}
function renderTable(){
  const metrics=DATA.metrics.slice(0,4);
  document.querySelector("#runs thead").innerHTML="<tr>"+["run","dataset","model","backend","seed","status",...metrics]
    .map(h=>`<th>${h}</th>`).join("")+"</tr>";
  document.querySelector("#runs tbody").innerHTML=filtered().map(r=>`<tr class="run-row status-${r.status}">`+
    [r.run,r.dataset,r.model,r.backend,r.seed,r.status].map(v=>`<td>${fmt(v)}</td>`).join("")+
    metrics.map(m=>`<td>${fmt(r.metrics[m])}</td>`).join("")+"</tr>").join("");
}
function renderCurves(){
  const metric=document.getElementById("curve-metric").value;
  const traces=filtered().slice(0,30).filter(r=>DATA.curves[r.run_dir]&&DATA.curves[r.run_dir][metric])
    .map(r=>({x:DATA.curves[r.run_dir][metric].map(p=>p[0]),y:DATA.curves[r.run_dir][metric].map(p=>p[1]),
      mode:"lines+markers",name:`${r.backend||r.model} s${r.seed} ${r.run}`}));
  Plotly.react("curves",traces,{xaxis:{title:"step"},yaxis:{title:metric},margin:{t:20}});
}
function renderBars(){
  const metric=document.getElementById("bar-metric").value;
  const rows=(DATA.groups[metric]||[]).filter(g=>(!state.dataset||String(g.dataset)===state.dataset)&&
    (!state.model||String(g.model)===state.model)&&(!state.backend||String(g.backend)===state.backend));
  const trace={type:"bar",x:rows.map(g=>`${g.dataset}/${g.model}/${g.backend}`),y:rows.map(g=>g.mean),
    error_y:{type:"data",array:rows.map(g=>g.std||0),visible:true},text:rows.map(g=>`n=${g.n}`),textposition:"auto"};
  Plotly.react("bars",rows.length?[trace]:[],{yaxis:{title:metric},margin:{t:20}});
}
function renderPaper(){
  document.getElementById("paper").innerHTML=DATA.paper_tables.map(t=>{
    const verdicts=t.columns.map((c,i)=>c.endsWith(":verdict")?i:-1).filter(i=>i>=0);
    return `<h3>${t.paper}: ${t.title}</h3><div class="scroll"><table class="paper-table"><tr>`+
      t.columns.map(c=>`<th>${c}</th>`).join("")+
      "</tr>"+t.rows.map(r=>"<tr>"+r.map((v,i)=>verdicts.includes(i)?
        `<td><span class="badge ${v==="within"?"ok":(v==="outside"?"bad":"na")}">${v||"n/a"}</span></td>`:
        `<td>${fmt(v)}</td>`).join("")+"</tr>").join("")+"</table></div>";}).join("")||
      "<p>No results/&lt;paper&gt;/ tables.</p>";
}
function renderImages(){
  document.getElementById("images").innerHTML=DATA.images.map(i=>
    `<figure style="display:inline-block"><img src="data:image/png;base64,${i.data}"><figcaption>${i.run}: ${i.name}</figcaption></figure>`
  ).join("")||"<p>No images in these runs.</p>";
}
function renderAll(){renderTable();renderCurves();renderBars();
  document.getElementById("summary").textContent=`${filtered().length} of ${DATA.runs.length} runs shown`;}
function init(){
  buildFilters();
  const curveMetrics=[...new Set(Object.values(DATA.curves).flatMap(c=>Object.keys(c)))]
    .sort((a,b)=>(a==="val/acc"?-1:b==="val/acc"?1:a.localeCompare(b)));
  document.getElementById("curve-metric").innerHTML=curveMetrics.map(m=>`<option>${m}</option>`).join("");
  document.getElementById("bar-metric").innerHTML=Object.keys(DATA.groups).map(m=>`<option>${m}</option>`).join("");
  document.getElementById("curve-metric").onchange=renderCurves;
  document.getElementById("bar-metric").onchange=renderBars;
  renderPaper();renderImages();renderAll();
}
init();
</script></body></html>
"""
