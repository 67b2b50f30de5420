/**
 * Device copies of an adapter's LoRA factors, made once per feeds object and freed with it. Both
 * device backends use it: the WebGPU EP's uploader (`gpu-transfer.ts`) and the ort-native addon's
 * device tensors (`native-decoder.ts`). Fed from the host instead, an adapter on all seven
 * projections of a 24-layer model is 336 uploads per decode step (docs/benchmarks.md).
 *
 * Placed copies live as long as the host feeds they were made from: they are found through a
 * WeakMap keyed by that object and freed by a FinalizationRegistry once it is collected. A
 * generator collects right after an eviction, so an evicted version's device memory goes with it.
 */
import type { LoraFeeds } from "./lora-feeds.ts";

/** How many feeds objects a `ResidentFeeds` has uploaded and, after their collection, freed. */
export interface ResidentCounts {
  uploaded: number;
  freed: number;
}

/**
 * Per-feeds-object device copies of type `T`: `upload` makes one from host feeds (the placed copy
 * must not reference the feeds object itself, or it is never collected); `free` releases one.
 */
export class ResidentFeeds<T> {
  private readonly placed = new WeakMap<LoraFeeds, T>();
  private readonly pending = new WeakMap<LoraFeeds, Promise<T>>();
  private readonly counts: ResidentCounts = { uploaded: 0, freed: 0 };
  private readonly frees: FinalizationRegistry<T>;

  constructor(
    private readonly upload: (feeds: LoraFeeds) => Promise<T>,
    free: (placed: T) => void,
  ) {
    this.frees = new FinalizationRegistry<T>((placed) => {
      free(placed);
      this.counts.freed++;
    });
  }

  /** The device copy of `feeds`: uploaded on the first call for that object, shared after. */
  place(feeds: LoraFeeds): Promise<T> {
    const done = this.placed.get(feeds);
    if (done !== undefined) return Promise.resolve(done);
    const running = this.pending.get(feeds);
    if (running !== undefined) return running;
    const p = this.upload(feeds)
      .then((placed) => {
        this.placed.set(feeds, placed);
        this.frees.register(feeds, placed);
        this.counts.uploaded++;
        return placed;
      })
      .finally(() => this.pending.delete(feeds));
    this.pending.set(feeds, p);
    return p;
  }

  /** Uploads and frees so far (a snapshot), for tests and diagnostics. */
  stats(): ResidentCounts {
    return { ...this.counts };
  }
}
