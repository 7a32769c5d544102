/** What a {@link FrameThrottle} drives: the session's parser and its connection's reading. */
export interface ThrottleTarget {
  /** Parses bytes; every frame it completes must call {@link FrameThrottle.spend}. */
  feed(chunk: Buffer): void;
  /** Stops reading from the client. */
  pause(): void;
  /** Reads from the client again. */
  resume(): void;
}

/**
 * Bytes parsed at a time while a limit is set: the budget is checked between
 * slices, so a large chunk (a 64 KiB TCP read, a WebSocket message of many
 * frames) overshoots it by at most one slice's frames (~80 tiny SENDs), not
 * by a whole chunk's (~1,300). Slicing costs a function call per 4 KiB.
 */
const SLICE = 4 * 1024;
/**
 * Bytes parsed for one connection per event-loop turn while a limit is set;
 * beyond it the rest waits for the next turn (reading paused meanwhile), so
 * other connections' reads and timers come in between: a burst within budget
 * (a full bucket arriving at once) does not hold everyone else up.
 */
const TURN = 16 * 1024;
/**
 * A throttled connection is read again once it has this share of a second's
 * budget (at least one frame): 20 wake-ups a second at most, each handling a
 * batch, rather than one per slice; every wake-up costs timers, a pause and a
 * resume of the socket and a write to each subscriber reached.
 */
const WAKE_SHARE = 1 / 20;

/**
 * `maxFramesPerSecond` for one connection, as a token bucket of one second's
 * frames: a client within the rate never waits; a faster one is slowed by
 * backpressure, never dropped. When the budget is spent, the rest of what was
 * read waits here, in order, and the connection stops reading until the
 * budget refills, so the client's own socket buffers fill and its writes
 * block. Frames the parser completed beyond the budget (within one slice) are
 * handled at once, and their debt is paid with reading paused.
 */
export class FrameThrottle {
  private tokens: number;
  private refilledAt = performance.now();
  private readonly capacity: number;
  /** Frames of budget a wait lasts for (see {@link WAKE_SHARE}). */
  private readonly batch: number;
  /** Bytes read and not parsed yet, oldest first. */
  private readonly backlog: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private turn: NodeJS.Immediate | undefined;
  private paused = false;
  private stopped = false;

  constructor(
    private readonly rate: number,
    private readonly target: ThrottleTarget,
  ) {
    this.capacity = Math.max(1, rate);
    this.batch = Math.max(1, Math.floor(rate * WAKE_SHARE));
    this.tokens = this.capacity;
  }

  /** True while reading is paused: the client is alive, only held back. */
  get holding(): boolean {
    return this.paused;
  }

  /** One frame was parsed. */
  spend(): void {
    this.tokens--;
  }

  /** Bytes from the client: parsed now if the budget allows, else when it refills. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.backlog.push(chunk);
    // While waiting, bytes that still come (ws had them already) queue behind.
    if (this.timer === undefined && this.turn === undefined) this.run();
  }

  /** The session ended: drop what waits, and read again so the close can complete. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    clearImmediate(this.turn);
    this.timer = undefined;
    this.turn = undefined;
    this.backlog.length = 0;
    if (this.paused) {
      this.paused = false;
      this.target.resume();
    }
  }

  private run(): void {
    let fed = 0;
    while (this.backlog.length > 0) {
      if (this.refill() < 1) {
        this.wait();
        return;
      }
      if (fed >= TURN) {
        this.nextTurn();
        return;
      }
      const chunk = this.backlog[0] as Buffer;
      if (chunk.length > SLICE) {
        this.backlog[0] = chunk.subarray(SLICE);
        this.target.feed(chunk.subarray(0, SLICE));
        fed += SLICE;
      } else {
        this.backlog.shift();
        this.target.feed(chunk);
        fed += chunk.length;
      }
      // A frame may have ended the session (ERROR, DISCONNECT).
      if (this.stopped) return;
    }
    if (this.refill() < 0) this.wait();
    else if (this.paused) {
      this.paused = false;
      this.target.resume();
    }
  }

  /** Goes on with the backlog after the other connections' events of this turn. */
  private nextTurn(): void {
    this.hold();
    this.turn = setImmediate(() => {
      this.turn = undefined;
      this.run();
    });
  }

  /** Pauses reading until a batch of budget is back. */
  private wait(): void {
    this.hold();
    const ms = Math.ceil(((this.batch - this.tokens) / this.rate) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, ms);
    // Sockets keep the process alive, not this timer.
    this.timer.unref();
  }

  private hold(): void {
    if (!this.paused) {
      this.paused = true;
      this.target.pause();
    }
  }

  private refill(): number {
    const now = performance.now();
    const tokens = this.tokens + ((now - this.refilledAt) * this.rate) / 1000;
    this.tokens = Math.min(this.capacity, tokens);
    this.refilledAt = now;
    return this.tokens;
  }
}
