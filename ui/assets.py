"""The page's CSS and the one script it needs (citation chips → source cards; "Open PDF"
buttons → the PDF viewer, ui/pdfview.py).

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
.source-abstract mark.evidence, .source-passage mark.evidence { background:rgba(234,179,8,.35);
  color:inherit; padding:0 .1em; border-radius:2px; }
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
.passage-location { font-weight:600; color:#57606a; }
ul.uncited { font-size:.9em; padding-left:1.2em; }
ul.uncited summary { cursor:pointer; } ul.uncited .source-abstract { margin:.2em 0 .5em; }
#sources-panel { max-height: 640px; overflow-y: auto; }
.turn-sources[hidden] { display:none; }
/* PDF viewer (ui/pdfview.py): a panel over the chat; the page image is white in both themes */
.pdf-buttons { margin-top:.4em; display:flex; gap:.4em; flex-wrap:wrap; }
button.open-pdf { font-size:.8em; padding:.15em .6em; border-radius:.5em; cursor:pointer;
  border:1px solid var(--border-color-primary, #d0d7de); background:var(--button-secondary-background-fill, #f3f4f6);
  color:var(--body-text-color, #111); }
button.open-pdf:hover { border-color:#2563eb; }
button.open-pdf:focus-visible, #pdf-viewer button:focus-visible { outline:3px solid #2563eb; outline-offset:2px; }
#pdf-viewer { position:fixed; top:2vh; right:2vw; width:min(900px, 96vw); max-height:96vh; z-index:1000;
  overflow-y:auto; background:var(--background-fill-primary, #fff); border:1px solid var(--border-color-primary, #d0d7de);
  border-radius:10px; box-shadow:0 10px 40px rgba(0,0,0,.35); padding:.8em; }
.pdf-head { font-size:.95em; } .pdf-title { font-weight:600; }
.pdf-where { font-weight:600; white-space:nowrap; } .pdf-note { color:var(--body-text-color-subdued, #57606a); }
.pdf-problem { margin-top:.5em; color:#b91c1c; font-weight:600; }
.pdf-page { position:relative; margin-top:.5em; line-height:0; border:1px solid var(--border-color-primary, #d0d7de); }
.pdf-page img { width:100%; height:auto; display:block; }
/* multiply keeps the black type black under the yellow on the (always white) page */
.pdf-highlight { position:absolute; background:rgba(250,204,21,.55); mix-blend-mode:multiply;
  outline:1px solid rgba(202,138,4,.6); border-radius:2px; pointer-events:none; }
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
  function openPdf(button) {
    const box = document.querySelector('#pdf-request textarea, #pdf-request input');
    const go = document.querySelector('#pdf-open');
    if (!box || !go) return;
    box.value = `${button.dataset.turn}:${button.dataset.n}:${button.dataset.page}`;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    go.click();
  }
  document.addEventListener('keydown', (event) => {
    const viewer = document.querySelector('#pdf-viewer');
    if (event.key === 'Escape' && viewer && viewer.getClientRects().length) {
      document.querySelector('#pdf-close')?.click();
    }
  });
  document.addEventListener('click', (event) => {
    const pdf = event.target.closest && event.target.closest('button.open-pdf');
    if (pdf) {
      event.preventDefault();
      openPdf(pdf);
      return;
    }
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
