/** Entry of the worklist page (`/ohif/pancreas-ai-worklist`): mounts <Worklist> into #root. */
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { MODE_ROUTE } from "../ids";
import { injectStyles, PANEL_CSS } from "../panel/styles";
import { Worklist } from "./Worklist";

const WORKLIST_CSS = `
body{margin:0;background:#090c29;color:#e6edf3;font:14px/1.4 system-ui,sans-serif}
.pai-worklist{padding:16px 24px}.pai-worklist h1{font-size:20px;color:#8fb8ff}
.pai-filters{display:flex;gap:8px;align-items:center;margin:8px 0}
.pai-filters input,.pai-filters select{background:#1d2633;color:#e6edf3;border:1px solid #2a3441;border-radius:4px;padding:4px}
.pai-worklist th button{background:none;border:none;color:#9aa7b4;font-weight:600;cursor:pointer;padding:0}
.pai-worklist a{color:#8fb8ff}.pai-worklist td{padding:6px 4px;vertical-align:top}
.pai-boards{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0}
.pai-boards select,.pai-worklist td select{background:#1d2633;color:#e6edf3;border:1px solid #2a3441;border-radius:4px;padding:3px}
.pai-worklist button{background:#1d2633;color:#e6edf3;border:1px solid #4d6d99;border-radius:3px;padding:2px 8px;font:inherit;cursor:pointer}
.pai-inline-form{flex-basis:100%;max-width:520px}
.pai-treatments{border:1px solid #2a3441;border-radius:4px;display:flex;flex-wrap:wrap;gap:4px 12px}
.pai-check{flex-direction:row!important;align-items:center;color:#e6edf3!important}
`;

export function mountWorklist(element: HTMLElement, viewerBase: string): void {
  injectStyles(document, "pancreas-ai-panel-css", PANEL_CSS);
  injectStyles(document, "pancreas-ai-worklist-css", WORKLIST_CSS);
  createRoot(element).render(createElement(Worklist, { viewerBase, modeRoute: MODE_ROUTE }));
}

const root = document.getElementById("root");
if (root !== null) mountWorklist(root, root.dataset.viewerBase ?? "/ohif/");
