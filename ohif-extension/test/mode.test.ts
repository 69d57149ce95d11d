import { describe, expect, it } from "vitest";
import {
  CANDIDATE_ATTRIBUTE,
  PROTOCOL_ID,
  SEG_REFERENCED_ATTRIBUTE,
  getHangingProtocolModule,
  isImageSeries,
  isViewportCandidate,
  isReferencedBySeg,
  protocol,
} from "../src/hangingProtocol";
import extension from "../src/index";
import { RT_SOP_CLASS_HANDLER, RT_VIEWPORT, pancreasModeInstance } from "../src/mode";
import type { DisplaySet } from "../src/ohifTypes";

// Issue 20, item 5: a study with RTSTRUCT / KO / PR / SR series must hang its CT.
const ct: DisplaySet = { displaySetInstanceUID: "ct", SeriesInstanceUID: "1.2.3", Modality: "CT", images: [{}, {}], isReconstructable: true };
const cbct: DisplaySet = { displaySetInstanceUID: "cbct", SeriesInstanceUID: "1.2.4", Modality: "CT", images: [{}] };
const seg: DisplaySet = { displaySetInstanceUID: "seg", Modality: "SEG", isOverlayDisplaySet: true, referencedSeriesInstanceUID: "1.2.3" };
const rtstruct: DisplaySet = { displaySetInstanceUID: "rt", Modality: "RTSTRUCT", isOverlayDisplaySet: true, referencedSeriesInstanceUID: "1.2.4" };
const ko: DisplaySet = { displaySetInstanceUID: "ko", Modality: "KO", unsupported: true };
const pr: DisplaySet = { displaySetInstanceUID: "pr", Modality: "PR", images: [] };
const sr: DisplaySet = { displaySetInstanceUID: "sr", Modality: "SR" };
// Issue 23: the PDAC detector's lesion SEG (series 9004) references the same CT.
const lesionSeg: DisplaySet = {
  displaySetInstanceUID: "lesions", Modality: "SEG", SeriesNumber: 9004,
  SeriesDescription: "PancreasAI PDAC detection (investigational)", isOverlayDisplaySet: true, referencedSeriesInstanceUID: "1.2.3",
};

describe("pancreas-ai hanging protocol", () => {
  it("takes only image series as the viewport's base, never an overlay or a document", () => {
    expect([ct, cbct, seg, rtstruct, ko, pr, sr].filter(isImageSeries).map((d) => d.displaySetInstanceUID)).toEqual(["ct", "cbct"]);
  });

  it("prefers the series the SEG references, not the one an RTSTRUCT references", () => {
    const all = [rtstruct, cbct, ko, seg, ct];
    expect(isReferencedBySeg(ct, all)).toBe(true);
    expect(isReferencedBySeg(cbct, all)).toBe(false);
    expect(isReferencedBySeg(ct, [rtstruct, cbct, ct])).toBe(false);
    expect(isReferencedBySeg({ ...cbct, SeriesInstanceUID: undefined }, [{ ...seg, referencedSeriesInstanceUID: undefined }])).toBe(false);
  });

  /** OHIF's protocol engine in small: required rules filter, matching weights add up. */
  function hung(displaySets: DisplaySet[]): string | undefined {
    const custom: Record<string, (ds: DisplaySet) => unknown> = {
      [CANDIDATE_ATTRIBUTE]: isViewportCandidate,
      [SEG_REFERENCED_ATTRIBUTE]: (ds) => isReferencedBySeg(ds, displaySets),
    };
    const rules = protocol.displaySetSelectors.mainDisplaySetId.seriesMatchingRules;
    const scored = displaySets.flatMap((ds) => {
      let score = 0;
      for (const rule of rules) {
        const value = rule.attribute in custom ? custom[rule.attribute]!(ds) : (ds as unknown as Record<string, unknown>)[rule.attribute];
        const expected = typeof rule.constraint.equals === "object" ? rule.constraint.equals.value : rule.constraint.equals;
        const ok = value === expected;
        if (rule.required === true && !ok) return [];
        if (ok) score += rule.weight ?? 1;
      }
      return [{ uid: ds.displaySetInstanceUID, score }];
    });
    scored.sort((a, b) => b.score - a.score);
    return scored[0]?.uid;
  }

  it("hangs the SEG (shown over its CT) when there is one, whatever comes first", () => {
    expect(hung([rtstruct, ko, pr, sr, cbct, seg, ct])).toBe("seg");
    expect(hung([seg, rtstruct, ct])).toBe("seg");
  });

  it("hangs the anatomical SEG, never the lesion SEG, whatever comes first", () => {
    expect(hung([lesionSeg, seg, ct])).toBe("seg");
    expect(hung([ct, seg, lesionSeg, rtstruct])).toBe("seg");
    // Only the lesion SEG (no anatomical one): the CT alone; the panel adds the lesions on request.
    expect(hung([lesionSeg, ct])).toBe("ct");
    expect(isViewportCandidate(lesionSeg)).toBe(false);
    expect(isReferencedBySeg(ct, [lesionSeg, ct])).toBe(true);
  });

  it("hangs the CT when there is no SEG, never an RTSTRUCT, KO, PR or SR", () => {
    expect(hung([rtstruct, ko, pr, sr, ct])).toBe("ct");
    expect(hung([sr, ko, pr, rtstruct])).toBeUndefined();
    const mr: DisplaySet = { displaySetInstanceUID: "mr", SeriesInstanceUID: "9", Modality: "MR", images: [{}], isReconstructable: true };
    expect(hung([mr, rtstruct, cbct])).toBe("cbct");
  });

  it("has one stage with one viewport showing one display set", () => {
    expect(protocol.stages).toHaveLength(1);
    expect(protocol.stages[0]?.viewports.map((v) => v.displaySets.map((d) => d.id))).toEqual([["mainDisplaySetId"]]);
    expect(protocol.stages[0]?.viewports[0]?.viewportOptions.viewportType).toBe("stack");
    // Applied only when the mode names it.
    expect(protocol.protocolMatchingRules).toEqual([]);
    expect(getHangingProtocolModule()).toEqual([{ name: PROTOCOL_ID, protocol }]);
  });

  it("registers its custom attributes in the extension's preRegistration", () => {
    const callbacks = new Map<string, (ds: DisplaySet) => unknown>();
    const hangingProtocolService = { addCustomAttribute: (id: string, _name: string, cb: (ds: DisplaySet) => unknown) => void callbacks.set(id, cb) };
    const displaySetService = { getActiveDisplaySets: () => [seg, ct, cbct], subscribe: () => ({ unsubscribe: () => undefined }), EVENTS: {} };
    extension.preRegistration({ servicesManager: { services: { displaySetService, hangingProtocolService } } });
    expect(callbacks.get(CANDIDATE_ATTRIBUTE)?.(rtstruct)).toBe(false);
    expect(callbacks.get(CANDIDATE_ATTRIBUTE)?.(seg)).toBe(true);
    expect(callbacks.get(SEG_REFERENCED_ATTRIBUTE)?.(ct)).toBe(true);
    expect(callbacks.get(SEG_REFERENCED_ATTRIBUTE)?.(cbct)).toBe(false);
    expect(extension.getHangingProtocolModule()[0]?.name).toBe(PROTOCOL_ID);
    // Without the service (an older host) it does nothing.
    expect(() => extension.preRegistration({ servicesManager: { services: { displaySetService } } })).not.toThrow();
  });
});

describe("pancreas-ai mode", () => {
  const base = {
    id: "@ohif/mode-segmentation", routeName: "segmentation", displayName: "Segmentation",
    extensions: { "@ohif/extension-default": "^3.0.0" }, hangingProtocol: ["@ohif/mnGrid"],
    sopClassHandlers: ["@ohif/extension-default.sopClassHandlerModule.stack", "@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg"],
    routes: [{ path: "template", layoutTemplate: () => undefined, layoutInstance: { id: "layout", props: { viewports: [{ namespace: "cs" }] } } }],
  };

  it("uses its own hanging protocol, not @ohif/seg", () => {
    expect(pancreasModeInstance(base).hangingProtocol).toBe(PROTOCOL_ID);
  });

  it("handles RTSTRUCTs with OHIF's RT extension: SOP class handler and dependency", () => {
    const mode = pancreasModeInstance(base);
    expect(mode.sopClassHandlers).toEqual([...base.sopClassHandlers, RT_SOP_CLASS_HANDLER]);
    expect(mode.extensions).toHaveProperty("@ohif/extension-cornerstone-dicom-rt");
  });

  it("keeps the segmentation mode's RT viewport and lists the RT handler once", () => {
    const rtViewport = { namespace: RT_VIEWPORT, displaySetsToDisplay: [RT_SOP_CLASS_HANDLER] };
    const withRt = {
      ...base,
      sopClassHandlers: [...base.sopClassHandlers, RT_SOP_CLASS_HANDLER],
      routes: [{ ...base.routes[0]!, layoutInstance: { id: "layout", props: { viewports: [{ namespace: "cs" }, rtViewport] } } }],
    };
    const mode = pancreasModeInstance(withRt);
    expect(mode.sopClassHandlers?.filter((h) => h === RT_SOP_CLASS_HANDLER)).toHaveLength(1);
    expect(mode.routes[0]?.layoutInstance.props.viewports).toEqual([{ namespace: "cs" }, rtViewport]);
  });
});
