"""The page's CSS and the one script it needs (citation chips → source cards).

Gradio 6 takes both at launch(); the script listens on the document so it keeps
working when Gradio re-renders the chat and the sources panel.
"""

CSS = """
.cite-chip { display:inline-block; min-width:1.4em; padding:0 .35em; margin:0 .1em;
  border-radius:.7em; background:#2563eb; color:#fff !important; font-size:.8em; line-height:1.4;
  text-align:center; text-decoration:none !important; cursor:pointer; }
.cite-chip:hover { background:#1d4ed8; }
.source-card { border:1px solid var(--border-color-primary, #d0d7de); border-radius:8px; padding:.6em; margin:.5em 0;
  transition: box-shadow .3s, border-color .3s; }
.source-card.highlight { border-color:#2563eb; box-shadow:0 0 0 3px #93c5fd; }
.source-title { font-weight:600; }
.source-meta { font-size:.85em; color:var(--body-text-color-subdued, #57606a); }
.source-abstract { font-size:.9em; margin-top:.3em; }
/* translucent and inheriting the text colour: readable in light and dark mode */
.source-abstract mark.evidence { background:rgba(234,179,8,.35); color:inherit; padding:0 .1em;
  border-radius:2px; }
.answer-note { font-size:.85em; color:#9a6700; margin-top:.4em; }
.support-dot { display:inline-block; width:.6em; height:.6em; border-radius:50%; margin-left:.25em;
  vertical-align:middle; }
.support-high { background:#16a34a; } .support-mid { background:#eab308; }
.support-low { background:#dc2626; }
.support-badge { font-size:.75em; font-weight:500; color:#fff; border-radius:.6em;
  padding:0 .45em; margin-left:.3em; }
.quote-mark { font-size:.7em; color:#57606a; border:1px solid #d0d7de; border-radius:.6em;
  padding:0 .4em; margin-left:.25em; white-space:nowrap; }
.uncited-flag { font-size:.7em; color:#fff; background:#dc2626; border-radius:.6em;
  padding:0 .4em; margin-left:.25em; }
.source-passage { font-size:.85em; margin-top:.3em; }
.source-passage mark.evidence { background:#fef08a; }
.passage-location { font-weight:600; color:#57606a; }
ul.uncited { font-size:.9em; padding-left:1.2em; }
ul.uncited summary { cursor:pointer; } ul.uncited .source-abstract { margin:.2em 0 .5em; }
#sources-panel { max-height: 640px; overflow-y: auto; }
.turn-sources[hidden] { display:none; }
"""

HEAD = """
<script>
(() => {
  function showSource(turn, n) {
    const sections = document.querySelectorAll('.turn-sources');
    // a turn the page no longer keeps sources for shows the "older" note instead
    const kept = Array.from(sections).some((section) => section.dataset.turn === turn);
    const shown = kept ? turn : 'older';
    sections.forEach((section) => {
      section.hidden = section.dataset.turn !== shown;
    });
    const card = document.getElementById(`src-${turn}-${n}`);
    if (!card) return;
    document.querySelectorAll('.source-card.highlight').forEach((c) => c.classList.remove('highlight'));
    card.classList.add('highlight');
    card.scrollIntoView({behavior: 'smooth', block: 'center'});
  }
  document.addEventListener('click', (event) => {
    const chip = event.target.closest && event.target.closest('a.cite-chip');
    if (!chip) return;
    event.preventDefault();
    event.stopPropagation();
    showSource(chip.dataset.turn, chip.dataset.cite);
  }, true);
})();
</script>
"""

COPY_JS = """
(text) => {
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text);
  } else {
    const area = document.createElement('textarea');
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand('copy'); area.remove();
  }
  return text;
}
"""
