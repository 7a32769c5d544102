/**
 * The report of the flood benchmark (flood.ts): the machine, every round's
 * figures, and per variant the median with the range over the rounds.
 */
import { execFileSync } from 'node:child_process';
import { formatMs, markdownTable } from './stats.js';
import { REPO } from './targets.js';

/** One way of running the paced fan-out. */
export interface Variant {
  key: 'alone' | 'flood' | 'unlimited';
  label: string;
  /** `--max-frames-per-second` of the broker; 0: none. */
  limit: number;
  /** Whether a flooder runs beside the paced fan-out. */
  flood: boolean;
}

/** What one variant measured in one round. */
export interface FloodResult {
  variant: Variant['key'];
  /** Paced subscribers' latency, ms. */
  p50: number | undefined;
  p99: number | undefined;
  p999: number | undefined;
  max: number | undefined;
  /** Paced messages some subscriber never read. */
  lost: number;
  /** Paced subscribers dropped by the broker. */
  troubles: number;
  /** Flood messages/s the broker let through (its one subscriber read them). */
  floodAccepted: number | undefined;
  /** Flood SENDs the flooder handed to its socket, warm-up included. */
  floodSent: number | undefined;
  /** The flood subscriber dropped (a slow consumer of an unthrottled flood). */
  floodTroubles: number;
  /** Share of the whole machine's CPU in use during the measured part. */
  machineBusy: number;
  /** Cores the broker used during the measured part. */
  brokerCores: number;
  /** Cores the flooder's client process used (it competes for the machine too). */
  flooderCores: number;
  /**
   * ms per second the broker's event loop was ready to run but waited for a
   * core (/proc/<pid>/schedstat): the machine's doing, not the broker's.
   */
  brokerWaitMsPerS: number;
  /** The same for the paced subscribers' processes (the worse of the two). */
  subscribersWaitMsPerS: number;
  /** The broker's longest event-loop delay in the measured part (loop-delay.mjs), ms. */
  loopDelayMax: number;
}

function sh(command: string): string {
  try {
    return execFileSync('sh', ['-c', command], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 5000,
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** The machine now: what the report's header needs from before the run. */
export function machineNow() {
  return { date: new Date().toISOString(), uptime: sh('uptime') };
}

interface ReportInput {
  results: FloodResult[][];
  variants: Variant[];
  settings: { durationMs: number; warmupMs: number; subscribers: number; pacedRate: number };
  rate: number;
  command: string;
  commit: string;
  before: ReturnType<typeof machineNow>;
}

const pct = (x: number) => `${Math.round(x * 100)}%`;
const count = (x: number | undefined) =>
  x === undefined ? '–' : Math.round(x).toLocaleString('en').replaceAll(',', ' ');

function median(xs: number[]): number | undefined {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** `median (min – max)` of per-round values. */
function spread(xs: number[], format: (x: number | undefined) => string): string {
  const s = xs.filter(Number.isFinite);
  if (s.length === 0) return '–';
  if (s.length === 1) return format(s[0]);
  return `${format(median(s))} (${format(Math.min(...s))} – ${format(Math.max(...s))})`;
}

const signedMs = (x: number | undefined) =>
  x === undefined ? '–' : `${x >= 0 ? '+' : '−'}${formatMs(Math.abs(x))}`;

/** Machine busy share below which a round counts as calm. */
const CALM = 0.85;

/** Per round, Δ p99 of the flood run against its pair's "alone" run, by how busy the machine was. */
function splitByLoad(results: FloodResult[][]) {
  const calm: number[] = [];
  const busy: number[] = [];
  for (const round of results) {
    const alone = round.find((r) => r.variant === 'alone');
    const flood = round.find((r) => r.variant === 'flood');
    if (alone?.p99 === undefined || flood?.p99 === undefined) continue;
    const quiet = alone.machineBusy < CALM && flood.machineBusy < CALM;
    (quiet ? calm : busy).push(flood.p99 - alone.p99);
  }
  return { calm, busy };
}

/** Renders the whole report as markdown. */
export function renderFlood(input: ReportInput): string {
  const { results, variants, settings, rate } = input;
  const label = (key: string) => variants.find((v) => v.key === key)?.label ?? key;
  const of = (key: string) => results.map((round) => round.find((r) => r.variant === key));
  const values = (key: string, pick: (r: FloodResult) => number | undefined) =>
    of(key).map((r) => (r ? (pick(r) ?? Number.NaN) : Number.NaN));
  const delta = (key: string, pick: (r: FloodResult) => number | undefined) => {
    const alone = values('alone', pick);
    return values(key, pick).map((x, i) => x - (alone[i] as number));
  };
  const summary = variants.map((v) => [
    v.label,
    spread(
      values(v.key, (r) => r.p50),
      formatMs,
    ),
    spread(
      values(v.key, (r) => r.p99),
      formatMs,
    ),
    v.key === 'alone'
      ? ''
      : spread(
          delta(v.key, (r) => r.p99),
          signedMs,
        ),
    spread(
      values(v.key, (r) => r.p999),
      formatMs,
    ),
    v.flood
      ? spread(
          values(v.key, (r) => r.floodAccepted),
          count,
        )
      : '',
    spread(
      values(v.key, (r) => r.brokerCores),
      (x) => (x === undefined ? '–' : x.toFixed(2)),
    ),
  ]);
  const split = splitByLoad(results);
  const perRound = results.flatMap((round, i) =>
    round.map((r) => [
      String(i + 1),
      label(r.variant),
      formatMs(r.p50),
      formatMs(r.p99),
      formatMs(r.p999),
      formatMs(r.max),
      `${r.lost}${r.troubles ? `, ${r.troubles} dropped` : ''}`,
      r.floodAccepted === undefined
        ? ''
        : `${count(r.floodAccepted)}${r.floodTroubles ? ' (its subscriber dropped)' : ''}`,
      r.floodSent === undefined ? '' : count(r.floodSent),
      r.brokerCores.toFixed(2),
      r.flooderCores.toFixed(2),
      Number.isFinite(r.brokerWaitMsPerS) ? r.brokerWaitMsPerS.toFixed(0) : '–',
      formatMs(Number.isFinite(r.loopDelayMax) ? r.loopDelayMax : undefined),
      Number.isFinite(r.subscribersWaitMsPerS) ? r.subscribersWaitMsPerS.toFixed(0) : '–',
      pct(r.machineBusy),
    ]),
  );
  const seconds = settings.durationMs / 1000;
  return [
    '# Flood: a paced subscriber beside a flooding publisher',
    '',
    `- command: \`${input.command}\``,
    `- commit: ${sh('git log -1 --format="%h %s"')} (build ${input.commit}; \`+dirty\`: src/ had uncommitted changes)`,
    `- date: ${input.before.date}`,
    `- machine: nproc ${sh('nproc')}, node ${process.version}`,
    `- uptime before: \`${input.before.uptime}\``,
    `- uptime after: \`${sh('uptime')}\``,
    '',
    '```',
    sh('lscpu | head -15'),
    '```',
    '',
    '## Method',
    '',
    `- stompbus compiled from src/ (bench/load/.build-flood), a fresh process per run, started with`,
    `  \`--max-frames-per-second ${rate}\` (the "no limit" variant: 0). Clients are the load harness's`,
    '  worker processes (bench/load/worker.ts), STOMP over WebSocket on 127.0.0.1.',
    `- Paced fan-out: ${settings.subscribers} subscribers of one topic, one publisher sending`,
    `  ${settings.pacedRate} messages/s (256-byte bodies stamped with the send time), ${settings.warmupMs / 1000} s`,
    `  warm-up then ${seconds} s measured; latency is send time to the subscriber process reading the frame.`,
    '- Flooder: one more connection sending 256-byte SENDs to another topic as fast as its socket',
    '  takes them (its WebSocket topped up to 1 MiB unsent every 20 ms: worker.ts `flood` pace), from',
    '  before the warm-up to past the end.',
    '  One subscriber of that topic counts what the broker let through ("flood accepted/s": what it',
    '  read in the measured part, so a starved subscriber catching up can read more than the limit).',
    '  "flood sent" counts what the flooder handed to its socket, most of it left in socket buffers.',
    '  Every variant opens the same connections; without a flood, the flooder stays idle.',
    `- ${results.length} round(s). "Alone" and "+ flooder" run at the same time on two brokers, so a`,
    '  busy spell of the machine hits both alike: their Δ p99 is what the flood costs the paced',
    '  clients of its own broker. The no-limit contrast runs by itself (after the pair in odd rounds,',
    "  before it in even ones), so its Δ also carries the machine's changes between runs.",
    '  Δ p99 is per round against the same round\'s "alone" run; cells give median (min – max).',
    '- broker / flooder cores and machine busy: /proc/<pid>/stat and /proc/stat over the measured',
    '  part. "broker waited ms/s": how long per second the broker\'s event loop was ready to run but',
    '  waited for a core (/proc/<pid>/schedstat): a tail that comes with a high figure there is the',
    "  machine's, not the broker's. \"broker loop delay max\": the longest the broker's event loop",
    '  was late (monitorEventLoopDelay, preloaded by bench/load/loop-delay.mjs), blocked or not run.',
    '',
    '## Summary',
    '',
    markdownTable(
      [
        'variant',
        'p50 ms',
        'p99 ms',
        'Δ p99 vs alone',
        'p99.9 ms',
        'flood accepted/s',
        'broker cores',
      ],
      summary,
    ),
    '',
    `Δ p99 of "${label('flood')}" split by how busy the machine was during the pair (both runs`,
    `under ${pct(CALM)} busy, or not): under ${pct(CALM)}: ${spread(split.calm, signedMs)} (${split.calm.length} round(s));`,
    `${pct(CALM)} or more: ${spread(split.busy, signedMs)} (${split.busy.length} round(s)).`,
    '',
    '## Every run',
    '',
    markdownTable(
      [
        'round',
        'variant',
        'p50',
        'p99',
        'p99.9',
        'max',
        'lost',
        'flood accepted/s',
        'flood sent',
        'broker cores',
        'flooder cores',
        'broker waited ms/s',
        'broker loop delay max',
        'subscribers waited ms/s',
        'machine busy',
      ],
      perRound,
    ),
    '',
  ].join('\n');
}
