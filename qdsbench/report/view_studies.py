"""Report JS: hyperparameter studies: best trial, trials table, trial vs metric (best so far), importances."""

# ruff: noqa: E501  (embedded JS)
STUDIES_JS = """
function studyHtml(s){
  const params=Object.keys(s.space);
  const best=s.best?`<div class="best" id="${s.id}-best"><b>best ${esc(s.metric)} = ${fmt(s.best.value)}</b>`+
      (s.best.job!==null?` (trial ${fmt(s.best.job)})`:"")+`<span class="note"> from ${esc(s.best.source)}</span><br>`+
      Object.entries(s.best.params).map(([k,v])=>`<code class="best-param">${esc(k)}=${fmt(v)}</code>`).join(" ")+"</div>"
    :"<p>No finished trial yet.</p>";
  const trials=`<div class="scroll"><table class="study-trials"><thead><tr><th>trial</th><th>status</th>`+
    params.map(p=>`<th>${esc(p)}</th>`).join("")+`<th>${esc(s.metric)}</th><th>run</th></tr></thead><tbody>`+
    s.trials.map(t=>`<tr${s.best&&t.job===s.best.job?' class="best-trial"':""}>${td(t.job)}${td(t.status)}`+
      params.map(p=>td(t.params[p])).join("")+td(t.value)+`<td title="${esc(t.run_dir)}">${esc(t.name)}</td></tr>`).join("")+"</tbody></table></div>";
  const space=params.map(p=>`<code>${esc(p)}: ${esc(s.space[p])}</code>`).join(", ");
  return `<section class="study" id="${s.id}"><h3>${esc(s.name)}</h3><p class="note">${esc(s.direction)} <code>${esc(s.metric)}</code> over ${space}; `+
    `${s.trials.length} trials in <code>${esc(s.dir)}</code></p>${best}${trials}<div class="plot-row"><div id="fig-${s.id}-trials" class="plot half"></div>`+
    (s.importance?`<div id="fig-${s.id}-importance" class="plot half"></div>`:`<p class="note importance-note">${esc(s.importance_note)}</p>`)+"</div></section>";
}
function renderStudies(){
  if(!DATA.studies.length){$("studies").innerHTML="<p>No hyperparameter studies (<code>qdsbench-train ... hparams_search=&lt;preset&gt;</code>).</p>";return;}
  $("studies").innerHTML=DATA.studies.map(studyHtml).join("");
  DATA.studies.forEach(s=>{
    const done=s.trials.filter(t=>t.value!==null), better=String(s.direction).startsWith("min")?Math.min:Math.max;
    let acc=null;const bestSoFar=done.map(t=>(acc=acc===null?t.value:better(acc,t.value)));
    plot(`fig-${s.id}-trials`,[{x:done.map(t=>t.job),y:done.map(t=>t.value),mode:"markers",name:"trial",text:done.map(t=>t.name),marker:{size:9}},
      {x:done.map(t=>t.job),y:bestSoFar,mode:"lines",line:{shape:"hv"},name:"best so far"}],
      {xaxis:Object.assign(axis("trial"),{dtick:1}),yaxis:axis(s.metric),height:340});
    if(s.importance){const e=Object.entries(s.importance).reverse();
      plot(`fig-${s.id}-importance`,[{type:"bar",orientation:"h",x:e.map(p=>p[1]),y:e.map(p=>p[0])}],
        {xaxis:axis(`importance for ${s.metric} (fANOVA)`),yaxis:axis("parameter"),height:340,showlegend:false});}
  });
}
"""
