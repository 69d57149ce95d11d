import { describe, expect, it } from "vitest";
import type { Segmentation, Services } from "../src/ohifTypes";
import { jumpToSegmentWhenReady, segmentCentre } from "../src/panel/segmentJump";

/** Timers run by hand: `tick()` fires the one waiting callback. */
function manualTimers() {
  const waiting: Array<{ callback: () => void; handle: number }> = [];
  let next = 1;
  return {
    waiting,
    setTimer: (callback: () => void) => {
      waiting.push({ callback, handle: next });
      return next++;
    },
    clearTimer: (handle: unknown) => {
      const index = waiting.findIndex((w) => w.handle === handle);
      if (index >= 0) waiting.splice(index, 1);
    },
    tick: () => waiting.shift()?.callback(),
  };
}

/** The segmentation service as OHIF has it while a SEG is being put on the viewport. */
function fakeServices() {
  const segmentation: Segmentation = { segmentationId: "seg", segments: { "2": { segmentIndex: 2 } } };
  const state = { onViewport: false, centre: false };
  const jumps: Array<[string, number, string | undefined]> = [];
  const active: number[] = [];
  const services = {
    segmentationService: {
      getSegmentations: () => [segmentation],
      getSegmentation: (id: string) => (id === "seg" ? segmentation : undefined),
      getSegmentationRepresentations: () => (state.onViewport ? [{}] : []),
      addSegmentationRepresentation: () => undefined,
      setActiveSegment: (_id: string, index: number) => active.push(index),
      jumpToSegmentCenter: (id: string, index: number, viewportId?: string) => jumps.push([id, index, viewportId]),
      subscribe: () => ({ unsubscribe: () => undefined }),
      EVENTS: {},
    },
    viewportGridService: { getState: () => ({ activeViewportId: "default" }) },
  } as unknown as Services;
  const setCentre = () => {
    state.centre = true;
    segmentation.segments = { "2": { segmentIndex: 2, cachedStats: { center: { world: [10, -20, 35.5] } } } };
  };
  return { services, state, jumps, active, setCentre };
}

describe("jump to a segment's centre", () => {
  it("reads OHIF's centre of a segment, and nothing that is not three finite numbers", () => {
    expect(segmentCentre({ cachedStats: { center: { world: [1, 2, 3] } } })).toEqual([1, 2, 3]);
    expect(segmentCentre({ cachedStats: { namedStats: { center: { value: [4, 5, 6] } } } })).toEqual([4, 5, 6]);
    expect(segmentCentre({ cachedStats: { center: { world: [1, Number.NaN, 3] } } })).toBeUndefined();
    expect(segmentCentre({ cachedStats: { center: { world: [1, 2] } } })).toBeUndefined();
    expect(segmentCentre({ segmentIndex: 1 })).toBeUndefined();
    expect(segmentCentre(undefined)).toBeUndefined();
  });

  it("jumps at once when the viewport shows the SEG and the centre is known", () => {
    const fake = fakeServices();
    fake.state.onViewport = true;
    fake.setCentre();
    const timers = manualTimers();
    jumpToSegmentWhenReady(fake.services, "seg", 2, { intervalMs: 200, timeoutMs: 1000, ...timers });
    expect(fake.jumps).toEqual([["seg", 2, "default"]]);
    expect(timers.waiting).toHaveLength(0);
  });

  it("waits for the SEG to reach the viewport and for its centre instead of losing the click", () => {
    const fake = fakeServices();
    const timers = manualTimers();
    jumpToSegmentWhenReady(fake.services, "seg", 2, { intervalMs: 200, timeoutMs: 10_000, ...timers });
    // The segment is active at once (the list shows it), but OHIF could not move the slice yet.
    expect(fake.active).toEqual([2]);
    expect(fake.jumps).toEqual([]);
    timers.tick();
    fake.state.onViewport = true;
    timers.tick();
    expect(fake.jumps).toEqual([]);
    fake.setCentre();
    timers.tick();
    expect(fake.jumps).toEqual([["seg", 2, "default"]]);
    expect(timers.waiting).toHaveLength(0);
  });

  it("is dropped by the next selection", () => {
    const fake = fakeServices();
    const timers = manualTimers();
    const cancel = jumpToSegmentWhenReady(fake.services, "seg", 2, { intervalMs: 200, timeoutMs: 10_000, ...timers });
    expect(timers.waiting).toHaveLength(1);
    cancel();
    expect(timers.waiting).toHaveLength(0);
    fake.state.onViewport = true;
    fake.setCentre();
    timers.tick();
    expect(fake.jumps).toEqual([]);
  });

  it("tries once more when the time is up, whatever the state", () => {
    const fake = fakeServices();
    const timers = manualTimers();
    jumpToSegmentWhenReady(fake.services, "seg", 2, { intervalMs: 200, timeoutMs: 600, ...timers });
    // 200 and 400 ms: still waiting; at 600 ms it jumps.
    timers.tick();
    timers.tick();
    expect(fake.jumps).toEqual([]);
    timers.tick();
    expect(fake.jumps).toEqual([["seg", 2, undefined]]);
    expect(timers.waiting).toHaveLength(0);
  });
});
