/** Identifiers taken from package.json, defined once. */
import { name, ohif, version } from "../package.json";

export const EXTENSION_ID: string = name;
export const EXTENSION_VERSION: string = version;
export const MODE_ID = `${name}/mode-${ohif.modeRoute}`;
export const MODE_ROUTE: string = ohif.modeRoute;
export const WORKLIST_ROUTE: string = ohif.worklistRoute;
export const PANEL_NAME = "pancreas-ai";
export const PANEL_ID = `${EXTENSION_ID}.panelModule.${PANEL_NAME}`;
