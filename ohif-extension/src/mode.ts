/**
 * The `pancreas-ai` mode (default export): OHIF's segmentation mode with the "Pancreas AI"
 * panel first on the right and the study's CT hung with the node's SEG over it by the
 * extension's own hanging protocol (`src/hangingProtocol.ts`), whatever other series (RTSTRUCT,
 * KO, PR, SR, PDF) the study holds. Built from the host's own `@ohif/mode-segmentation` at load time (`loadModules`), so
 * the toolbar, tool groups and viewports stay those of the OHIF release that serves it.
 */
import { PROTOCOL_ID } from "./hangingProtocol";
import { EXTENSION_VERSION, MODE_ID, MODE_ROUTE, PANEL_ID } from "./ids";

interface LayoutInstance {
  id: string;
  props: { viewports: unknown[]; leftPanels?: string[]; rightPanels?: string[]; [key: string]: unknown };
}

interface Route {
  path: string;
  layoutTemplate: (this: Route, ...args: unknown[]) => unknown;
  layoutInstance: LayoutInstance;
}

interface ModeInstance {
  id: string;
  routeName: string;
  displayName: string;
  routes: Route[];
  extensions: Record<string, string>;
  hangingProtocol: string | string[];
  sopClassHandlers?: string[];
  [key: string]: unknown;
}

interface ModeModule {
  modeInstance: ModeInstance;
}

interface ModeFactoryParams {
  modeConfiguration?: unknown;
  loadModules: (names: string[]) => Promise<unknown[]>;
}

/**
 * OHIF imports every key of a mode's `extensions` by name; ours is not a built-in package, so
 * its key is the URL of the extension module beside this one (the loaded module's `id` is
 * package.json's name).
 */
export const EXTENSION_URL: string = new URL(/* @vite-ignore */ "./extension.js", import.meta.url).href;

const THUMBNAILS = "@ohif/extension-default.panelModule.seriesList";
const SEGMENTATION_PANEL = "@ohif/extension-cornerstone.panelModule.panelSegmentationWithToolsLabelMap";
/**
 * OHIF's RT Structure Set support (in the prebuilt app): an RTSTRUCT becomes a display set of
 * its own, listed with the thumbnails and shown in the RT viewport (which the segmentation
 * mode's layout carries) when dropped into the viewport, instead of an unsupported series.
 */
export const RT_EXTENSION = "@ohif/extension-cornerstone-dicom-rt";
export const RT_SOP_CLASS_HANDLER = `${RT_EXTENSION}.sopClassHandlerModule.dicom-rt`;
export const RT_VIEWPORT = `${RT_EXTENSION}.viewportModule.dicom-rt`;

export function pancreasModeInstance(base: ModeInstance): ModeInstance {
  const [baseRoute] = base.routes;
  if (baseRoute === undefined) throw new Error("the segmentation mode has no route");
  const layoutInstance: LayoutInstance = {
    ...baseRoute.layoutInstance,
    props: {
      ...baseRoute.layoutInstance.props,
      // The segmentation panel sits on the left: OHIF's segmentation mode switches to it when the
      // SEG loads, and the "Pancreas AI" panel must stay in view on the right.
      leftPanels: [THUMBNAILS, SEGMENTATION_PANEL],
      leftPanelClosed: false,
      rightPanels: [PANEL_ID],
      rightPanelClosed: false,
      rightPanelInitialExpandedWidth: 380,
    },
  };
  return {
    ...base,
    id: MODE_ID,
    routeName: MODE_ROUTE,
    displayName: "Pancreas AI",
    routes: [{ ...baseRoute, path: MODE_ROUTE, layoutInstance }],
    extensions: { [RT_EXTENSION]: "^3.0.0", ...base.extensions, [EXTENSION_URL]: `^${EXTENSION_VERSION}` },
    sopClassHandlers: [...new Set([...(base.sopClassHandlers ?? []), RT_SOP_CLASS_HANDLER])],
    // The CT in the viewport with the SEG over it, whatever series come first (see
    // src/hangingProtocol.ts for why not OHIF's @ohif/seg).
    hangingProtocol: PROTOCOL_ID,
  };
}

const mode = {
  id: MODE_ID,
  extensionDependencies: { [EXTENSION_URL]: `^${EXTENSION_VERSION}` },
  async modeFactory({ loadModules }: ModeFactoryParams): Promise<ModeInstance> {
    const [segmentation] = (await loadModules(["@ohif/mode-segmentation"])) as [ModeModule | undefined];
    if (segmentation === undefined) throw new Error("OHIF's @ohif/mode-segmentation is not available");
    return pancreasModeInstance(segmentation.modeInstance);
  },
};

export default mode;
