/**
 * The OHIF extension (default export), loaded by OHIF 3.13's module loader with
 * `import(url)` from `window.config.extensions`.
 */
import { createElement, type ReactElement } from "react";
import { getHangingProtocolModule, registerProtocolAttributes } from "./hangingProtocol";
import { EXTENSION_ID, EXTENSION_VERSION, PANEL_NAME } from "./ids";
import type { PanelProps, ServicesManager } from "./ohifTypes";
import { PanelHost } from "./panel/PanelHost";

interface ExtensionParams {
  servicesManager: ServicesManager;
}

const extension = {
  id: EXTENSION_ID,
  version: EXTENSION_VERSION,
  /** The custom attributes of the mode's hanging protocol (src/hangingProtocol.ts). */
  preRegistration({ servicesManager }: ExtensionParams): void {
    const { hangingProtocolService, displaySetService } = servicesManager.services;
    if (hangingProtocolService === undefined) return;
    registerProtocolAttributes(hangingProtocolService, () => displaySetService.getActiveDisplaySets());
  },
  getHangingProtocolModule,
  getPanelModule({ servicesManager }: ExtensionParams) {
    // A hook-free wrapper: it runs in the host's tree and only creates an element.
    const component = (props: Partial<PanelProps>): ReactElement =>
      createElement(PanelHost, { ...props, servicesManager });
    return [
      {
        name: PANEL_NAME,
        iconName: "tab-linear",
        iconLabel: "Pancreas AI",
        label: "Pancreas AI",
        component,
      },
    ];
  },
};

export default extension;
