/** Types of ceiling-track.mjs (plain JavaScript, shared with the floor's processes). */
export interface TrackerReport {
  expected: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  p50: number;
  p99: number;
  max: number;
}

export declare class Tracker {
  constructor(base: number, count: number, keys: number);
  readonly received: number;
  readonly count: number;
  body(buf: Uint8Array, offset: number, key: unknown, t: number): void;
  report(): TrackerReport;
}
