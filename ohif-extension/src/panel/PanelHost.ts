/**
 * The component handed to OHIF — the only code of ours that runs inside the host's React tree.
 *
 * It is a class component that uses nothing but `createElement` and `Component` (no hooks, no
 * context): React 18's elements are plain objects tagged with `Symbol.for("react.element")` and
 * class components are recognised by `prototype.isReactComponent`; the host's reconciler drives
 * both, whichever copy of React created them. Its only element is an empty `<div>`; on mount it
 * starts the extension's own React root (`createRoot` of the bundled react-dom) inside that div,
 * where the panel's hooks run against the same React that renders them. The host's tree and ours
 * never share a hook dispatcher, so there is no "invalid hook call", and the host's React version
 * is free to differ in its internals as long as it accepts React 18 elements.
 */
import { Component, createElement, type ReactElement } from "react";
import { createRoot, type Root } from "react-dom/client";
import type { DisplaySet, PanelProps, Services, Subscription } from "../ohifTypes";
import { PanelContent } from "./PanelContent";
import { injectStyles, PANEL_CSS } from "./styles";

function studyUidOf(services: Services): string | undefined {
  const fromDisplaySets = services.displaySetService
    .getActiveDisplaySets()
    .map((ds: DisplaySet) => ds.StudyInstanceUID)
    .find((uid): uid is string => typeof uid === "string" && uid !== "");
  if (fromDisplaySets !== undefined) return fromDisplaySets;
  const params = new URLSearchParams(window.location.search);
  const fromUrl = params.get("StudyInstanceUIDs") ?? params.get("studyInstanceUIDs");
  return fromUrl?.split(",")[0] ?? undefined;
}

export class PanelHost extends Component<PanelProps> {
  private container: HTMLDivElement | null = null;
  private root: Root | undefined;
  private subscription: Subscription | undefined;

  override componentDidMount(): void {
    if (this.container === null) return;
    injectStyles(document, "pancreas-ai-panel-css", PANEL_CSS);
    this.root = createRoot(this.container);
    const { displaySetService } = this.props.servicesManager.services;
    const event = displaySetService.EVENTS.DISPLAY_SETS_ADDED;
    if (event !== undefined) this.subscription = displaySetService.subscribe(event, () => this.renderContent());
    this.renderContent();
  }

  override componentWillUnmount(): void {
    this.subscription?.unsubscribe();
    const root = this.root;
    this.root = undefined;
    // Unmounting another root synchronously during the host's commit is not allowed: defer it.
    if (root !== undefined) queueMicrotask(() => root.unmount());
  }

  private renderContent(): void {
    const services = this.props.servicesManager.services;
    this.root?.render(createElement(PanelContent, { services, studyUid: studyUidOf(services) }));
  }

  override render(): ReactElement {
    return createElement("div", {
      ref: (element: HTMLDivElement | null): void => {
        this.container = element;
      },
      "data-testid": "pancreas-ai-panel-host",
      style: { height: "100%", overflow: "auto" },
    });
  }
}
