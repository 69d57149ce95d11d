/** The few OHIF 3.13 service shapes the extension calls (structural; OHIF ships no types on npm dist). */

export interface DisplaySet {
  displaySetInstanceUID: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
  Modality?: string;
  SeriesDescription?: string;
  SeriesNumber?: number | string;
  instances?: Array<{ SOPInstanceUID?: string }>;
  referencedDisplaySetInstanceUID?: string;
  /** Set by the SEG / RT SOP class handlers from the referenced series. */
  referencedSeriesInstanceUID?: string;
  images?: unknown[];
  isOverlayDisplaySet?: boolean;
  isReconstructable?: boolean;
  unsupported?: boolean;
  /** SEG / RT display sets: reads the object and creates its segmentation (OHIF's SOP class handlers). */
  load?: (options: { headers?: Record<string, string> }) => Promise<unknown>;
}

export interface Subscription {
  unsubscribe: () => void;
}

export interface DisplaySetService {
  getActiveDisplaySets(): DisplaySet[];
  getDisplaySetByUID?(displaySetInstanceUID: string): DisplaySet | undefined;
  subscribe(event: string, callback: () => void): Subscription;
  EVENTS: Record<string, string>;
}

/** A segment of the segmentation service (`segments[segmentIndex]`). */
export interface Segment {
  segmentIndex?: number;
  label?: string;
  active?: boolean;
  /** The SEG loader's centroid (`center.world`, LPS mm) or a tool's named centre. */
  cachedStats?: {
    center?: { world?: number[] };
    namedStats?: { center?: { value?: number[] } };
  };
}

export interface Segmentation {
  segmentationId: string;
  segments?: Record<string, Segment | undefined>;
}

export interface SegmentationService {
  getSegmentations(): Segmentation[];
  getSegmentation(segmentationId: string): Segmentation | undefined;
  getSegmentationRepresentations(viewportId: string, specifier?: { segmentationId?: string }): unknown[];
  addSegmentationRepresentation(
    viewportId: string,
    options: { segmentationId: string; type?: "Labelmap" | "Contour" | "Surface" },
  ): Promise<unknown> | undefined;
  setActiveSegment(segmentationId: string, segmentIndex: number): void;
  /** OHIF 3.9+: the segmentation a brush in `viewportId` paints into. */
  setActiveSegmentation?(viewportId: string, segmentationId: string): void;
  jumpToSegmentCenter(
    segmentationId: string,
    segmentIndex: number,
    viewportId?: string,
    highlightAlpha?: number,
    highlightSegment?: boolean,
    animationLength?: number,
    highlightHideOthers?: boolean,
  ): void;
  subscribe(event: string, callback: () => void): Subscription;
  EVENTS: Record<string, string>;
}

/** `addCustomAttribute`: an attribute that hanging-protocol matching rules can name. */
export interface HangingProtocolService {
  addCustomAttribute(id: string, name: string, callback: (displaySet: DisplaySet) => unknown): void;
}

export interface ViewportGridService {
  getState(): { activeViewportId?: string | null };
}

/** The cornerstone viewport of a grid viewport (cornerstone3D's stack and volume viewports). */
export interface CornerstoneViewport {
  /** Moves the displayed slice to the one through `world` (LPS mm); false when none. */
  jumpToWorld?(world: [number, number, number]): boolean;
  render?(): void;
}

export interface CornerstoneViewportService {
  getCornerstoneViewport(viewportId: string): CornerstoneViewport | undefined | null;
}

/** cornerstone3D's tool group of a viewport (brush, eraser, window/level...). */
export interface ToolGroupService {
  getToolGroupForViewport(viewportId: string):
    | {
        setToolActive(name: string, options?: { bindings: Array<{ mouseButton: number }> }): void;
        setToolPassive(name: string): void;
        getActivePrimaryMouseButtonTool?(): string | undefined;
        hasTool?(name: string): boolean;
      }
    | undefined;
}

export interface UserAuthenticationService {
  getAuthorizationHeader(): Record<string, string> | undefined;
}

export interface Services {
  displaySetService: DisplaySetService;
  hangingProtocolService?: HangingProtocolService;
  segmentationService?: SegmentationService;
  viewportGridService?: ViewportGridService;
  cornerstoneViewportService?: CornerstoneViewportService;
  userAuthenticationService?: UserAuthenticationService;
  toolGroupService?: ToolGroupService;
}

export interface ServicesManager {
  services: Services;
}

export interface PanelProps {
  servicesManager: ServicesManager;
}
