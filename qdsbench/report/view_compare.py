"""Report JS: two runs side by side: what differs (run fields, overrides, config, metrics) and overlaid curves."""

# ruff: noqa: E501  (embedded JS)
COMPARE_JS = """
function initCompare(){
  const labels=DATA.runs.map(r=>r.name+(r.hidden?` [${r.kind}]`:""));
  fillSelect("compare-a",DATA.runs.map(r=>r.idx),labels);fillSelect("compare-b",DATA.runs.map(r=>r.idx),labels);
  const start=shown().filter(r=>DATA.curves[r.run_dir]);
  const pool=start.length>1?start:(shown().length>1?shown():DATA.runs);
  if(pool.length>0)$("compare-a").value=pool[0].idx;
  if(pool.length>1)$("compare-b").value=pool[1].idx;
  ["compare-a","compare-b","compare-metric"].forEach(id=>{$(id).onchange=renderCompare;});
  $("runs").addEventListener("click",e=>{const b=e.target.closest("button[data-slot]");if(!b)return;
    $("compare-"+b.dataset.slot).value=b.closest("tr").dataset.run;renderCompare();});
  renderCompare();
}
function same(a,b){return JSON.stringify(a??null)===JSON.stringify(b??null);}
function renderCompare(){
  const a=DATA.runs[$("compare-a").value], b=DATA.runs[$("compare-b").value];
  if(!a||!b){$("compare-diff").innerHTML="<p>Pick two runs.</p>";return;}
  const rows=[], add=(what,key,va,vb)=>{if(!same(va,vb))rows.push([what,key,va,vb]);};
  ["experiment","task","seed","status","kind"].forEach(k=>add("run",k,a[k],b[k]));
  add("run","tags",a.tags.join(", "),b.tags.join(", "));
  const oa=a.overrides||{}, ob=b.overrides||{};
  [...new Set([...Object.keys(oa),...Object.keys(ob)])].sort().forEach(k=>add("override",k,oa[k],ob[k]));
  [...new Set([...Object.keys(a.config),...Object.keys(b.config)])].sort().forEach(k=>add("config",k,a.config[k],b.config[k]));
  DATA.metrics.forEach(m=>add("metric",m,a.metrics[m],b.metrics[m]));
  add("run","command",a.command,b.command);
  const head=`<tr><th>what</th><th>key</th><th class="diff-a">A: ${esc(a.name)}</th><th class="diff-b">B: ${esc(b.name)}</th></tr>`;
  $("compare-diff").innerHTML=(a===b?"<p>A and B are the same run.</p>":`<p id="compare-count">${rows.length} difference${rows.length===1?"":"s"} (configs ${a.group===b.group?"equal but for seed and bookkeeping":"differ"})</p>`)+
    `<div class="scroll"><table id="compare-table"><thead>${head}</thead><tbody>`+
    rows.map(r=>`<tr class="diff-row diff-${r[0]}"><td>${r[0]}</td><td>${esc(r[1])}</td><td class="diff-a">${fmt(r[2])}</td><td class="diff-b">${fmt(r[3])}</td></tr>`).join("")+"</tbody></table></div>";
  const metric=$("compare-metric").value, x=$("curve-x").value;
  const traces=[[a,"A","solid"],[b,"B","dash"]].filter(([r])=>(DATA.curves[r.run_dir]||{})[metric])
    .map(([r,slot,dash])=>trace(r,metric,x,{name:`${slot}: ${r.name}`,line:{dash:dash}}));
  plot("fig-compare",traces,{xaxis:axis(x),yaxis:axis(metric)});
}
"""
