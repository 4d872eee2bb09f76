"""Report JS: per-paper campaign tables (protocol, n, verdict badges; wide tables scroll; their figures) and run figures."""

# ruff: noqa: E501  (embedded JS)
PAPERS_JS = """
function inlineMd(text){return esc(text).replace(/\\*\\*(.+?)\\*\\*/g,"<b>$1</b>").replace(/`(.+?)`/g,"<code>$1</code>");}
function paperTable(t){
  const verdicts=t.columns.map((c,i)=>c.endsWith(":verdict")?i:-1).filter(i=>i>=0);
  const badge=v=>`<td><span class="badge ${v==="within"?"ok":(v==="outside"?"bad":"na")}">${esc(v||"n/a")}</span></td>`;
  return `<h4>${esc(t.title)}</h4>`+(t.notes||[]).map(n=>`<p class="note">${inlineMd(n)}</p>`).join("")+
    `<div class="scroll"><table class="paper-table" id="paper-${esc(t.paper)}-${esc(t.name)}"><thead><tr>`+t.columns.map(c=>`<th>${esc(c)}</th>`).join("")+
    "</tr></thead><tbody>"+t.rows.map(r=>"<tr>"+r.map((v,i)=>verdicts.includes(i)?badge(v):td(v)).join("")+"</tr>").join("")+"</tbody></table></div>"+
    (t.figures||[]).map(f=>`<figure class="table-figure"><img alt="${esc(f.name)}" src="data:image/png;base64,${f.data}"><figcaption>${esc(f.name)}</figcaption></figure>`).join("");
}
function showPaper(paper){
  document.querySelectorAll("#papers section.paper").forEach(s=>{s.hidden=s.dataset.paper!==paper;});
  document.querySelectorAll("#paper-nav a").forEach(a=>a.classList.toggle("current",a.dataset.paper===paper));
}
function renderPapers(){
  const papers=[...new Set(DATA.paper_tables.map(t=>t.paper))];
  $("paper-nav").innerHTML=papers.map(p=>`<a href="#paper-${esc(p)}" data-paper="${esc(p)}">${esc(p)} (${DATA.paper_tables.filter(t=>t.paper===p).length} tables)</a>`).join("");
  $("papers").innerHTML=papers.map(p=>`<section class="paper" id="paper-${esc(p)}" data-paper="${esc(p)}"><h3>${esc(p)}</h3>`+
    DATA.paper_tables.filter(t=>t.paper===p).map(paperTable).join("")+"</section>").join("")||"<p>No results/&lt;paper&gt;/ tables.</p>";
  document.querySelectorAll("#paper-nav a").forEach(a=>{a.onclick=()=>showPaper(a.dataset.paper);});
  const wanted=decodeURIComponent(location.hash.replace(/^#paper-/,""));
  if(papers.length)showPaper(papers.includes(wanted)?wanted:papers[0]);  // one paper's page at a time
}
function renderImages(){
  $("images").innerHTML=DATA.images.map(i=>`<figure style="display:inline-block"><img src="data:image/png;base64,${i.data}">`+
    `<figcaption>${esc(i.run)}: ${esc(i.name)}</figcaption></figure>`).join("")||"<p>No images in these runs.</p>";
}
"""
