/** Panel styles, injected once (the host's Tailwind classes are not ours to rely on). */
export const PANEL_CSS = `
.pai-panel{font:13px/1.4 system-ui,sans-serif;color:#e6edf3;padding:8px 10px;overflow:auto;height:100%}
.pai-panel h3{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#8fb8ff;margin:12px 0 4px}
.pai-notice{background:#5a3b00;color:#ffd27a;border-radius:4px;padding:4px 6px;font-weight:600;margin:0 0 6px}
.pai-category{font-size:18px;font-weight:700}
.pai-cat-resectable{color:#5fd38d}.pai-cat-borderline{color:#ffc94d}.pai-cat-locally-advanced{color:#ff6b6b}
.pai-bar-row{display:grid;grid-template-columns:110px 1fr 56px;gap:6px;align-items:center;margin:2px 0}
.pai-bar-track{background:#1d2633;border-radius:3px;height:10px;position:relative;overflow:hidden}
.pai-bar{position:absolute;left:0;top:0;bottom:0;background:#4d6d99}.pai-bar-max{background:#8fb8ff}
.pai-bar-value{text-align:right;font-variant-numeric:tabular-nums}
.pai-kv{display:grid;grid-template-columns:120px 1fr;gap:2px 8px;margin-top:6px}
.pai-warning{margin-top:6px;background:#4a1010;color:#ffb3b3;border-radius:4px;padding:4px 6px}
.pai-table{width:100%;border-collapse:collapse}
.pai-table th{text-align:left;font-weight:600;color:#9aa7b4;border-bottom:1px solid #2a3441}
.pai-table td{padding:3px 2px;border-bottom:1px solid #1d2633}
.pai-table tbody tr{cursor:pointer}.pai-table tbody tr:hover{background:#1d2633}
.pai-clickable{cursor:pointer}
.pai-selected{outline:1px solid #8fb8ff;background:#1a2a40}
.pai-level-br td:nth-child(2){color:#ffc94d;font-weight:700}.pai-level-la td:nth-child(2){color:#ff6b6b;font-weight:700}
.pai-swatch{display:inline-block;width:10px;height:10px;border-radius:2px;vertical-align:middle}
.pai-muted{color:#9aa7b4}
.pai-lesion-button{margin-left:6px;background:#3a3200;color:#ffdc00;border:1px solid #ffdc00;border-radius:3px;padding:0 6px;font:inherit;cursor:pointer}
.pai-node-suspicious{color:#ff6b6b;font-weight:700}
.pai-risk{display:inline-block;border-radius:3px;padding:0 6px;font-weight:700}
.pai-risk-high{color:#ff6b6b}.pai-risk.pai-risk-high{background:#4a1010;color:#ffb3b3}.pai-risk.pai-risk-low{background:#10381f;color:#9be3b5}
.pai-prognosis-list{margin:2px 0 0;padding-left:16px}
.pai-lesion-button:disabled{opacity:.6;cursor:wait}
.pai-actions{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}
.pai-actions button,.pai-form button{background:#1d2633;color:#e6edf3;border:1px solid #4d6d99;border-radius:3px;padding:2px 8px;font:inherit;cursor:pointer}
.pai-actions button[aria-pressed="true"]{background:#4d6d99}
.pai-actions button:disabled,.pai-form button:disabled{opacity:.6;cursor:wait}
.pai-form{display:flex;flex-direction:column;gap:4px;margin:4px 0;padding:6px;border:1px solid #2a3441;border-radius:4px}
.pai-form label{display:flex;flex-direction:column;gap:2px;color:#9aa7b4}
.pai-form select,.pai-form textarea,.pai-form input{background:#1d2633;color:#e6edf3;border:1px solid #2a3441;border-radius:3px;padding:3px;font:inherit}
.pai-field-error{color:#ff6b6b}
.pai-review-disagrees{color:#ffc94d;font-weight:700}
`;

export function injectStyles(doc: Document, id: string, css: string): void {
  if (doc.getElementById(id) !== null) return;
  const style = doc.createElement("style");
  style.id = id;
  style.textContent = css;
  doc.head.appendChild(style);
}
