// What a receiver of bench/ceiling.bench.ts saw in one step: every message once, in order
// per destination (key), and how late. Bodies start with `<seq> <sent-ms> ` (ASCII), seq
// global over the run, destination = seq modulo the number of destinations. Shared by the
// STOMP subscriber (in the benchmark) and the plain kafkajs consumer (ceiling-floor.mjs).
const SPACE = 32;
const DOT = 46;

export class Tracker {
  /**
   * @param {number} base first sequence number of the step
   * @param {number} count messages in the step
   * @param {number} keys destinations (a message's is its seq modulo this)
   */
  constructor(base, count, keys) {
    this.base = base;
    this.count = count;
    this.keys = keys;
    this.seen = new Uint8Array(count);
    this.last = new Float64Array(keys).fill(-1);
    this.latencies = new Float64Array(count);
    this.received = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
  }

  /** A body at `buf[offset…]` arrived at `t` (ms, `performance.timeOrigin + performance.now()`). */
  body(buf, offset, _key, t) {
    let i = offset;
    let seq = 0;
    for (; buf[i] !== SPACE; i++) seq = seq * 10 + buf[i] - 48;
    i++;
    let sent = 0;
    let scale = 0;
    for (; buf[i] !== SPACE; i++) {
      const c = buf[i];
      if (c === DOT) scale = 1;
      else {
        sent = sent * 10 + c - 48;
        if (scale) scale *= 10;
      }
    }
    if (scale) sent /= scale;
    const n = seq - this.base;
    if (n < 0 || n >= this.count) return;
    if (this.seen[n]) {
      this.duplicates++;
      return;
    }
    this.seen[n] = 1;
    const key = seq % this.keys;
    if (seq < this.last[key]) this.outOfOrder++;
    else this.last[key] = seq;
    this.latencies[this.received++] = t - sent;
  }

  report() {
    const sorted = this.latencies.slice(0, this.received).sort();
    const at = (p) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : NaN;
    return {
      expected: this.count,
      received: this.received,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      p50: at(0.5),
      p99: at(0.99),
      max: sorted.length ? sorted[sorted.length - 1] : NaN,
    };
  }
}
