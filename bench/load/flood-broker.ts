/**
 * The flood benchmark's broker (a compiled stompbus started with
 * `--max-frames-per-second`) and what is measured around it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nowMs } from './stats.js';
import { cpuSecondsOf, spawnWithFds, stompbusCommand, stopChild } from './targets.js';

const LOOP_DELAY = fileURLToPath(new URL('./loop-delay.mjs', import.meta.url));

/**
 * Starts the compiled stompbus with the frame limit (0: none), with
 * loop-delay.mjs preloaded; resolves with its URL, its event-loop delays
 * and a stop.
 */
export async function startBroker(build: string, limit: number) {
  const flags = ['--max-frames-per-second', String(limit)];
  const argv = [...stompbusCommand(['--import', LOOP_DELAY], build), ...flags];
  const child = spawnWithFds(argv, false);
  // Every half second: [when read, max ms, p99 ms] of the broker's event-loop delay.
  const delays: Array<[at: number, max: number, p99: number]> = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\[loop-delay\] ([\d.]+) ([\d.]+)$/.exec(line);
      if (m) delays.push([nowMs(), Number(m[1]), Number(m[2])]);
    }
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`stompbus did not start: ${out}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ws:\/\/[\d.]+:\d+\/stomp/.exec(out);
      if (match) {
        clearTimeout(timer);
        ok(match[0]);
      }
    });
    child.once('exit', (code) => fail(new Error(`stompbus exited with ${code}: ${out}`)));
  });
  const endpoint = { url, protocols: ['v12.stomp'], login: 'bench', passcode: 'bench', vhost: '/' };
  /** The longest event-loop delay reported between `fromMs` and `toMs` (ms). */
  const loopDelayMax = (fromMs: number, toMs: number) => {
    // A report covers the half second before it is read.
    const inside = delays.filter(([at]) => at >= fromMs + 500 && at <= toMs + 500);
    return inside.length ? Math.max(...inside.map(([, max]) => max)) : Number.NaN;
  };
  return { endpoint, pid: child.pid as number, loopDelayMax, stop: () => stopChild(child) };
}

/**
 * From `start()` to `stop()`: how busy the whole machine was, the cores of
 * the broker and of the flooder, and how long the broker's and the paced
 * subscribers' processes waited for a core.
 */
export function meters(pid: number, flooderPid: number, subscriberPids: number[]) {
  const machine = () => {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return { idle, total: ticks.reduce((a, b) => a + b, 0) };
  };
  const cpu = (of: number) => {
    const c = cpuSecondsOf(of);
    return c ? c.user + c.sys : Number.NaN;
  };
  // A process's main thread (its event loop): ms it was runnable but waited for a core.
  const waited = (of: number) => {
    try {
      return Number(readFileSync(`/proc/${of}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
    } catch {
      return Number.NaN;
    }
  };
  const sample = () => ({
    m: machine(),
    cpu: cpu(pid),
    flooder: cpu(flooderPid),
    waited: waited(pid),
    subsWaited: subscriberPids.map(waited),
    at: nowMs(),
  });
  let start = sample();
  return {
    start() {
      start = sample();
    },
    stop() {
      const end = sample();
      const seconds = (end.at - start.at) / 1000;
      return {
        machineBusy: 1 - (end.m.idle - start.m.idle) / (end.m.total - start.m.total),
        brokerCores: (end.cpu - start.cpu) / seconds,
        flooderCores: (end.flooder - start.flooder) / seconds,
        brokerWaitMsPerS: (end.waited - start.waited) / seconds,
        subscribersWaitMsPerS: Math.max(
          ...end.subsWaited.map((w, i) => (w - (start.subsWaited[i] as number)) / seconds),
        ),
      };
    },
  };
}
