/**
 * Counts open connections, in total and per client address, against the
 * broker's `maxConnections` and `maxConnectionsPerIp` (0: no limit).
 */
export class ConnectionLimits {
  private total = 0;
  private readonly perIp = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerIp: number,
  ) {}

  /** Whether any limit is set (without one nothing needs counting). */
  get active(): boolean {
    return this.max > 0 || this.maxPerIp > 0;
  }

  /** Connections counted now. */
  get count(): number {
    return this.total;
  }

  /** Whether one more connection from `ip` (as {@link clientIp} gives it) fits. */
  admits(ip: string): boolean {
    if (this.max > 0 && this.total >= this.max) return false;
    return this.maxPerIp <= 0 || (this.perIp.get(ip) ?? 0) < this.maxPerIp;
  }

  /** Counts a connection from `ip`; false (nothing counted) when it does not fit. */
  take(ip: string): boolean {
    if (!this.admits(ip)) return false;
    this.total++;
    // Only kept with a per-address limit: otherwise a map entry per address is waste.
    if (this.maxPerIp > 0) this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    return true;
  }

  /** Gives back what {@link take} counted for `ip`. */
  release(ip: string): void {
    this.total--;
    if (this.maxPerIp <= 0) return;
    const had = this.perIp.get(ip) ?? 0;
    if (had <= 1) this.perIp.delete(ip);
    else this.perIp.set(ip, had - 1);
  }
}

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * The client address a limit counts: an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack listener reports) as its IPv4 form,
 * so one client is one key whichever way it came in; IPv6 in lower case.
 */
export function clientIp(address: string): string {
  const mapped = MAPPED_V4.exec(address);
  return mapped ? (mapped[1] as string) : address.toLowerCase();
}

/**
 * The address part of a connection's `remoteAddress` (`<address>:<port>`,
 * or the transport's name for a stream that has no peer address).
 */
export function addressOf(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  if (colon <= 0) return remoteAddress;
  const port = remoteAddress.slice(colon + 1);
  return /^\d+$/.test(port) || port === 'undefined' ? remoteAddress.slice(0, colon) : remoteAddress;
}
