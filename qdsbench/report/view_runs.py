"""Report JS: filters, the runs table, config groups (table + bars) and learning curves."""

# ruff: noqa: E501  (embedded JS)
RUNS_JS = """
function buildFilters(){
  const box=$("filters");
  FILTERS.forEach(k=>{
    const values=[...new Set(DATA.runs.map(r=>r[k]).filter(v=>v!==null&&v!==undefined).map(String))].sort();
    const s=document.createElement("select");s.id="filter-"+k;
    s.innerHTML=`<option value="">all ${k}</option>`+values.map(v=>`<option>${esc(v)}</option>`).join("");
    s.onchange=()=>{state.filters[k]=s.value;renderAll();};box.appendChild(s);});
  const n=DATA.runs.filter(r=>r.hidden).length;
  const label=document.createElement("label");
  label.innerHTML=`<input type="checkbox" id="show-hidden"> show debug and smoke runs (${n})`;
  box.appendChild(label);
  $("show-hidden").onchange=e=>{state.showHidden=e.target.checked;renderAll();};
}
function renderRuns(){
  const rows=shown(), keys=differing(rows), metrics=DATA.metrics.slice(0,4);
  const fixed=["compare","run","experiment","task","dataset","model","backend"];
  $("runs").tHead.innerHTML="<tr>"+fixed.map(h=>`<th>${h}</th>`).join("")+keys.map(k=>`<th class="override">${esc(k)}</th>`).join("")+
    ["seed","tags","status",...metrics].map(h=>`<th>${esc(h)}</th>`).join("")+"</tr>";
  $("runs").tBodies[0].innerHTML=rows.map(r=>`<tr class="run-row status-${esc(String(r.status).split(" ")[0])}${r.hidden?" hidden-run":""}" data-run="${r.idx}">`+
    `<td class="pick"><button data-slot="a" title="compare as A">A</button><button data-slot="b" title="compare as B">B</button></td>`+
    `<td class="run-name" title="${esc(r.run_dir)}">${esc(r.name)}${r.kind?` <span class="badge na">${esc(r.kind)}</span>`:""}</td>`+
    [r.experiment,r.task,r.dataset,r.model,r.backend].map(td).join("")+keys.map(k=>td(r.overrides?r.overrides[k]:null)).join("")+
    td(r.seed)+td(r.tags.join(", "))+`<td title="${esc(r.error||"")}">${fmt(r.status)}</td>`+metrics.map(m=>td(r.metrics[m])).join("")+"</tr>").join("");
}
function groupStats(metric){
  const by=new Map();
  shown().filter(r=>r.status==="finished"&&typeof r.metrics[metric]==="number").forEach(r=>{
    if(!by.has(r.group))by.set(r.group,{group:r.group,label:r.group_label,experiment:r.experiment,dataset:r.dataset,model:r.model,backend:r.backend,hidden:r.hidden,seeds:new Map(),runs:0});
    const g=by.get(r.group);g.runs++;
    const key=r.seed===null?"run:"+r.run_dir:String(r.seed);
    if(!g.seeds.has(key))g.seeds.set(key,[]);
    g.seeds.get(key).push(r.metrics[metric]);});
  return [...by.values()].map(g=>{
    const v=[...g.seeds.values()].map(a=>a.reduce((x,y)=>x+y,0)/a.length);
    const mean=v.reduce((x,y)=>x+y,0)/v.length;
    const std=v.length>1?Math.sqrt(v.reduce((x,y)=>x+(y-mean)**2,0)/(v.length-1)):null;
    return Object.assign(g,{mean:mean,std:std,n:v.length,seedList:[...g.seeds.keys()].filter(k=>!k.startsWith("run:"))});
  }).sort((a,b)=>a.label.localeCompare(b.label));
}
function renderGroups(){
  const metric=$("group-metric").value, groups=groupStats(metric);
  $("groups").tHead.innerHTML="<tr>"+["group","experiment","dataset","model","backend",`${metric} mean ± std`,"seeds","runs"].map(h=>`<th>${esc(h)}</th>`).join("")+"</tr>";
  $("groups").tBodies[0].innerHTML=groups.map(g=>`<tr class="group-row${g.hidden?" hidden-run":""}" data-group="${esc(g.group)}"><td>${esc(g.label)}</td>`+
    [g.experiment,g.dataset,g.model,g.backend].map(td).join("")+`<td>${fmt(g.mean)} ± ${g.std===null?"—":fmt(g.std)}</td>`+
    `<td class="seeds" title="seeds ${esc(g.seedList.join(", "))}">${g.n}</td><td>${g.runs}</td></tr>`).join("")||
    `<tr><td colspan="8">No finished run has ${esc(metric)}.</td></tr>`;
  const trace={type:"bar",orientation:"h",y:groups.map(g=>g.label),x:groups.map(g=>g.mean),
    error_x:{type:"data",array:groups.map(g=>g.std||0),visible:true},text:groups.map(g=>`${g.n} seed${g.n===1?"":"s"}`),textposition:"inside",insidetextanchor:"start"};
  plot("fig-groups",groups.length?[trace]:[],{xaxis:axis(`${metric} (mean ± std over seeds)`),yaxis:Object.assign(axis("group"),{autorange:"reversed"}),height:Math.max(260,90+34*groups.length),showlegend:false});
}
function renderCurves(){
  const metric=$("curve-metric").value, x=$("curve-x").value;
  const traces=shown().filter(r=>(DATA.curves[r.run_dir]||{})[metric]).slice(0,30).map(r=>trace(r,metric,x));
  plot("fig-curves",traces,{xaxis:axis(x),yaxis:axis(metric)});
}
"""
