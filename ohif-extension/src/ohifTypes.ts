/** The few OHIF 3.13 service shapes the extension calls (structural; OHIF ships no types on npm dist). */

export interface DisplaySet {
  displaySetInstanceUID: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
  Modality?: string;
  instances?: Array<{ SOPInstanceUID?: string }>;
  referencedDisplaySetInstanceUID?: string;
  /** Set by the SEG / RT SOP class handlers from the referenced series. */
  referencedSeriesInstanceUID?: string;
  images?: unknown[];
  isOverlayDisplaySet?: boolean;
  isReconstructable?: boolean;
  unsupported?: boolean;
}

export interface Subscription {
  unsubscribe: () => void;
}

export interface DisplaySetService {
  getActiveDisplaySets(): DisplaySet[];
  subscribe(event: string, callback: () => void): Subscription;
  EVENTS: Record<string, string>;
}

export interface SegmentationService {
  getSegmentations(): Array<{ segmentationId: string }>;
  setActiveSegment(segmentationId: string, segmentIndex: number): void;
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

export interface Services {
  displaySetService: DisplaySetService;
  hangingProtocolService?: HangingProtocolService;
  segmentationService?: SegmentationService;
}

export interface ServicesManager {
  services: Services;
}

export interface PanelProps {
  servicesManager: ServicesManager;
}
