// Draws every <pre class="mermaid"> of the page as an SVG with the vendored Mermaid; the
// Mermaid text stays under the drawing for copying.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const mermaid = window.mermaid;
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
  let n = 0;
  for (const pre of document.querySelectorAll("pre.mermaid")) {
    const text = pre.textContent;
    const figure = document.createElement("figure");
    figure.className = "diagram";
    try {
      const { svg } = await mermaid.render(`diagram-${n++}`, text);
      figure.innerHTML = svg; // sanitised by Mermaid (securityLevel strict)
    } catch (error) {
      figure.className = "diagram failed";
      figure.textContent = `This diagram could not be drawn: ${error.message || error}`;
    }
    const source = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Mermaid text (responder graph)";
    source.appendChild(summary);
    pre.replaceWith(figure);
    source.appendChild(pre);
    pre.className = "mermaid-source";
    figure.after(source);
  }
  document.body.dataset.diagrams = String(n);
});
