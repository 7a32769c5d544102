/** The markdown the load harness prints and writes to bench/results/load.md. */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { CpuUse, DeliveryResult, IdleResult } from './scenarios.js';
import { formatMs, formatRate, formatRatio, markdownTable } from './stats.js';
import { REPO, TARGET_NAMES, type TargetName, targetLabel } from './targets.js';

/** A delivery result, or why the run failed. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

/** Every result of one round of a harness run, by scenario label and target. */
export interface RoundResults {
  delivery: Map<string, Map<TargetName, Outcome<DeliveryResult>>>;
  idle: Map<TargetName, Outcome<IdleResult>>;
}

/** Every round of a harness run (`--rounds`, 1 by default). */
export interface Results {
  rounds: RoundResults[];
}

const mb = (bytes: number | undefined) =>
  bytes === undefined ? '–' : (bytes / 1024 / 1024).toFixed(bytes >= 100 * 1024 * 1024 ? 0 : 1);

/** Deliveries per second of broker CPU time: throughput with the machine's noise taken out. */
function perCpu(r: DeliveryResult | undefined): number | undefined {
  return r?.perSecond !== undefined && r.brokerCpu ? r.perSecond / r.brokerCpu.cores : undefined;
}

/** Cores in use, with the kernel's part: `0.72 (sys 0.31)`. */
function cpu(use: CpuUse | undefined): string {
  return use === undefined ? '–' : `${use.cores.toFixed(2)} (sys ${use.sys.toFixed(2)})`;
}

/** Targets in table order, of those that appear in `present`. */
function inTableOrder(present: Iterable<TargetName>): TargetName[] {
  const set = new Set(present);
  return TARGET_NAMES.filter((n) => set.has(n));
}

/** Scenario labels in the order they ran. */
function scenarioLabels(results: Results): string[] {
  const labels: string[] = [];
  for (const round of results.rounds)
    for (const label of round.delivery.keys()) if (!labels.includes(label)) labels.push(label);
  return labels;
}

function deliveryRows(results: Results): string[][] {
  const rows: string[][] = [];
  const many = results.rounds.length > 1;
  for (const scenario of scenarioLabels(results)) {
    results.rounds.forEach((round, i) => {
      const byTarget = round.delivery.get(scenario);
      if (!byTarget) return;
      for (const name of inTableOrder(byTarget.keys())) {
        const outcome = byTarget.get(name) as Outcome<DeliveryResult>;
        const lead = many
          ? [scenario, String(i + 1), targetLabel(name)]
          : [scenario, targetLabel(name)];
        if (!outcome.ok) {
          rows.push([...lead, ...Array<string>(12).fill('–'), outcome.error]);
          continue;
        }
        const r = outcome.value;
        rows.push([
          ...lead,
          r.subscribers === r.wanted ? String(r.subscribers) : `${r.subscribers}/${r.wanted}`,
          String(r.sent),
          formatRate(r.perSecond),
          formatMs(r.p50),
          formatMs(r.p99),
          String(r.lost),
          String(r.duplicates),
          cpu(r.brokerCpu),
          cpu(r.clientCpu),
          r.framesPerWsMessage === undefined ? '–' : r.framesPerWsMessage.toFixed(1),
          formatRate(perCpu(r)),
          `${mb(r.rssBefore)} → ${mb(r.rssPeak)}`,
          r.notes.join('; '),
        ]);
      }
    });
  }
  return rows;
}

const kib = (bytes: number | undefined) => (bytes === undefined ? '–' : (bytes / 1024).toFixed(1));

function idleRows(results: Results): string[][] {
  const rows: string[][] = [];
  const many = results.rounds.length > 1;
  results.rounds.forEach((round, i) => {
    for (const name of inTableOrder(round.idle.keys())) {
      const outcome = round.idle.get(name) as Outcome<IdleResult>;
      const lead = many ? [String(i + 1), targetLabel(name)] : [targetLabel(name)];
      if (!outcome.ok) {
        rows.push([...lead, '–', '–', '–', '–', '–', '–', outcome.error]);
        continue;
      }
      const r = outcome.value;
      rows.push([
        ...lead,
        r.opened === r.wanted ? String(r.opened) : `${r.opened}/${r.wanted}`,
        r.openSeconds.toFixed(1),
        mb(r.rssBefore),
        mb(r.rssAfter),
        kib(r.perConnection),
        kib(r.perConnectionAfterGc),
        r.notes.join('; '),
      ]);
    }
  });
  return rows;
}

function delivery(round: RoundResults, scenario: string, name: TargetName) {
  const outcome = round.delivery.get(scenario)?.get(name);
  return outcome?.ok ? outcome.value : undefined;
}

function idle(round: RoundResults, name: TargetName) {
  const outcome = round.idle.get(name);
  return outcome?.ok ? outcome.value : undefined;
}

/** One goal: the measured ratio (or comparison) and whether it holds. */
function goal(label: string, measured: string, wanted: string, holds: boolean | undefined | null) {
  const verdict = holds === null ? '' : holds === undefined ? 'n/a' : holds ? 'met' : 'MISSED';
  return [label, measured, wanted, verdict];
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

/** Median, lowest and highest of the defined values (undefined when there are none). */
function spread(values: (number | undefined)[]) {
  const sorted = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  sorted.sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return {
    median,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    n: sorted.length,
  };
}

/** A per-round value over all rounds: `median` alone, or `median (min–max)` with several. */
function overRounds(values: (number | undefined)[], format: (v: number | undefined) => string) {
  const s = spread(values);
  if (s === undefined) return { text: '–', median: undefined };
  const range = s.n > 1 ? ` (${format(s.min)}–${format(s.max)})` : '';
  return { text: `${format(s.median)}${range}`, median: s.median };
}

function goalRows(results: Results): string[][] {
  const rows: string[][] = [];
  const { rounds } = results;
  const per = (f: (round: RoundResults) => number | undefined) => rounds.map(f);
  for (const scenario of scenarioLabels(results)) {
    const sb = (r: RoundResults) => delivery(r, scenario, 'stompbus');
    const ws = (r: RoundResults) => delivery(r, scenario, 'ws');
    const rmq = (r: RoundResults) => delivery(r, scenario, 'rabbitmq');
    if (scenario.startsWith('fan-out')) {
      const toWs = overRounds(
        per((r) => ratio(sb(r)?.perSecond, ws(r)?.perSecond)),
        formatRatio,
      );
      const toRmq = overRounds(
        per((r) => ratio(sb(r)?.perSecond, rmq(r)?.perSecond)),
        formatRatio,
      );
      rows.push(
        goal(
          `${scenario}: deliveries/s stompbus ÷ bare ws`,
          toWs.text,
          '≥ 0.70×',
          toWs.median === undefined ? undefined : toWs.median >= 0.7,
        ),
      );
      rows.push(
        goal(
          `${scenario}: deliveries/s stompbus ÷ RabbitMQ`,
          toRmq.text,
          '≥ 3×',
          toRmq.median === undefined ? undefined : toRmq.median >= 3,
        ),
      );
      const cpuToWs = overRounds(
        per((r) => ratio(perCpu(sb(r)), perCpu(ws(r)))),
        formatRatio,
      );
      const cpuToRmq = overRounds(
        per((r) => ratio(perCpu(sb(r)), perCpu(rmq(r)))),
        formatRatio,
      );
      rows.push(
        goal(
          `${scenario}: deliveries per broker CPU-s stompbus ÷ bare ws (context)`,
          cpuToWs.text,
          '',
          null,
        ),
      );
      rows.push(
        goal(
          `${scenario}: deliveries per broker CPU-s stompbus ÷ RabbitMQ (context)`,
          cpuToRmq.text,
          '',
          null,
        ),
      );
      const sbP99 = spread(per((r) => sb(r)?.p99))?.median;
      const rmqP99 = spread(per((r) => rmq(r)?.p99))?.median;
      const lower = sbP99 !== undefined && rmqP99 !== undefined ? sbP99 < rmqP99 : undefined;
      rows.push(
        goal(
          `${scenario}: p99 stompbus vs RabbitMQ`,
          `${formatMs(sbP99)} vs ${formatMs(rmqP99)} ms`,
          'lower',
          lower,
        ),
      );
    } else if (scenario.startsWith('paced')) {
      const r = overRounds(
        per((x) => ratio(sb(x)?.p99, ws(x)?.p99)),
        formatRatio,
      );
      const sbP99 = spread(per((x) => sb(x)?.p99))?.median;
      const wsP99 = spread(per((x) => ws(x)?.p99))?.median;
      rows.push(
        goal(
          `${scenario}: p99 stompbus ÷ bare ws`,
          `${r.text} (${formatMs(sbP99)} vs ${formatMs(wsP99)} ms)`,
          '≤ 1.2×',
          r.median === undefined ? undefined : r.median <= 1.2,
        ),
      );
    }
  }
  if (rounds.some((r) => idle(r, 'stompbus') && idle(r, 'ws'))) {
    const mem = overRounds(
      per((r) => ratio(idle(r, 'stompbus')?.perConnection, idle(r, 'ws')?.perConnection)),
      formatRatio,
    );
    const sbKib = spread(per((r) => idle(r, 'stompbus')?.perConnection))?.median;
    const wsKib = spread(per((r) => idle(r, 'ws')?.perConnection))?.median;
    rows.push(
      goal(
        'idle: memory per connection stompbus ÷ bare ws',
        `${mem.text} (${kib(sbKib)} vs ${kib(wsKib)} KiB)`,
        '≤ 1.3×',
        mem.median === undefined ? undefined : mem.median <= 1.3,
      ),
    );
    const gc = overRounds(
      per((r) =>
        ratio(idle(r, 'stompbus')?.perConnectionAfterGc, idle(r, 'ws')?.perConnectionAfterGc),
      ),
      formatRatio,
    );
    const sbGc = spread(per((r) => idle(r, 'stompbus')?.perConnectionAfterGc))?.median;
    const wsGc = spread(per((r) => idle(r, 'ws')?.perConnectionAfterGc))?.median;
    rows.push(
      goal(
        'idle: the same after a full GC (context)',
        `${gc.text} (${kib(sbGc)} vs ${kib(wsGc)} KiB)`,
        '',
        null,
      ),
    );
  }
  return rows;
}

/** What one comparison row reads from a delivery result, and which way is better. */
interface Metric<R> {
  name: string;
  read: (r: R) => number | undefined;
  format: (v: number | undefined) => string;
  better: 'higher' | 'lower';
}

const fmtCores = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(2));
const fmtKib = (v: number | undefined) => kib(v);

function deliveryMetrics(scenario: string): Metric<DeliveryResult>[] {
  const rate: Metric<DeliveryResult> = {
    name: 'deliveries/s',
    read: (r) => r.perSecond,
    format: formatRate,
    better: 'higher',
  };
  const perCpuS: Metric<DeliveryResult> = {
    name: 'deliveries / broker CPU-s',
    read: perCpu,
    format: formatRate,
    better: 'higher',
  };
  const cores: Metric<DeliveryResult> = {
    name: 'broker CPU (cores)',
    read: (r) => r.brokerCpu?.cores,
    format: fmtCores,
    better: 'lower',
  };
  const p50: Metric<DeliveryResult> = {
    name: 'p50 ms',
    read: (r) => r.p50,
    format: formatMs,
    better: 'lower',
  };
  const p99: Metric<DeliveryResult> = {
    name: 'p99 ms',
    read: (r) => r.p99,
    format: formatMs,
    better: 'lower',
  };
  const peak: Metric<DeliveryResult> = {
    name: 'broker RSS peak MB',
    read: (r) => r.rssPeak,
    format: mb,
    better: 'lower',
  };
  if (scenario.startsWith('paced')) return [p50, p99, cores, perCpuS, peak];
  return [rate, perCpuS, cores, p50, p99, peak];
}

const idleMetrics: Metric<IdleResult>[] = [
  { name: 'KiB / connection', read: (r) => r.perConnection, format: fmtKib, better: 'lower' },
  {
    name: 'KiB / connection after full GC',
    read: (r) => r.perConnectionAfterGc,
    format: fmtKib,
    better: 'lower',
  },
  {
    name: 'seconds to open',
    read: (r) => r.openSeconds,
    format: (v) => v?.toFixed(1) ?? '–',
    better: 'lower',
  },
];

/**
 * stompbus against the baseline build, metric by metric: the median of each
 * over the rounds, and the ratio new ÷ old taken per round (the two ran in the
 * same round, next to each other or, paced, at the same time) with its median
 * and range.
 */
function baselineRows(results: Results): string[][] {
  const rows: string[][] = [];
  const { rounds } = results;
  const line = <R>(
    scenario: string,
    m: Metric<R>,
    get: (round: RoundResults, n: TargetName) => R | undefined,
  ) => {
    const read = (round: RoundResults, n: TargetName) => {
      const r = get(round, n);
      return r === undefined ? undefined : m.read(r);
    };
    const news = rounds.map((round) => read(round, 'stompbus'));
    const olds = rounds.map((round) => read(round, 'baseline'));
    const ratios = rounds.map((_, i) => ratio(news[i], olds[i]));
    const r = spread(ratios);
    rows.push([
      scenario,
      m.name,
      m.better,
      m.format(spread(news)?.median),
      m.format(spread(olds)?.median),
      formatRatio(r?.median),
      r === undefined ? '–' : `${formatRatio(r.min)}–${formatRatio(r.max)}`,
      ratios.map((x) => (x === undefined ? '–' : x.toFixed(2))).join(' / '),
    ]);
  };
  for (const scenario of scenarioLabels(results)) {
    if (!rounds.some((round) => delivery(round, scenario, 'baseline'))) continue;
    for (const m of deliveryMetrics(scenario))
      line(scenario, m, (round, n) => delivery(round, scenario, n));
  }
  if (rounds.some((round) => idle(round, 'baseline'))) {
    for (const m of idleMetrics) line('idle', m, idle);
  }
  return rows;
}

/** Versions and hardware, for the header. */
export function machine(): string[] {
  let rabbit = 'not found';
  try {
    const dir = readdirSync('/usr/lib/rabbitmq/lib').find((d) => d.startsWith('rabbitmq_server-'));
    if (dir) rabbit = dir.slice('rabbitmq_server-'.length);
  } catch {
    // Not a Debian-style install; the version stays unknown.
  }
  return [
    `- date: ${new Date().toISOString()}`,
    `- stompbus code: ${codeVersion()}`,
    `- machine: nproc ${cpus().length}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
    `- node ${process.version}, RabbitMQ ${rabbit}`,
    `- load average at start: ${loadAverage()}`,
  ];
}

/** The commit measured, and whether src/ differs from it. */
function codeVersion(): string {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: REPO, encoding: 'utf8', timeout: 5000 }).trim();
  try {
    const changed = git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean);
    const head = git('log', '-1', '--format=%h %s');
    return changed.length > 0
      ? `${head} (+ ${changed.length} uncommitted change(s) in src/)`
      : head;
  } catch {
    return 'unknown (no git)';
  }
}

/** The 1-minute load average, to tell a quiet machine from a busy one. */
export function loadAverage(): string {
  return loadavg()[0]?.toFixed(2) ?? '?';
}

/** The whole report. */
export function renderReport(results: Results, header: string[], method: string[]): string {
  const out = ['# Load benchmark: stompbus vs bare ws vs RabbitMQ Web-STOMP', '', ...header, ''];
  const many = results.rounds.length > 1;
  const comparison = baselineRows(results);
  if (comparison.length > 0) {
    const old = targetLabel('baseline');
    out.push(`## stompbus vs ${old}`, '');
    out.push(
      'Per metric: the median over the rounds of each build, and new ÷ old taken within each',
      'round (the two ran one right after the other, or, paced, at the same time), with the',
      'median and range of those per-round ratios.',
      '',
    );
    out.push(
      markdownTable(
        [
          'scenario',
          'metric',
          'better',
          'stompbus',
          old,
          'new ÷ old (median)',
          'range over rounds',
          'per round',
        ],
        comparison,
      ),
      '',
    );
  }
  if (results.rounds.some((r) => r.delivery.size > 0)) {
    out.push('## Delivery', '');
    out.push(
      markdownTable(
        [
          'scenario',
          ...(many ? ['round'] : []),
          'target',
          'subscribers',
          'sent',
          'deliveries/s',
          'p50 ms',
          'p99 ms',
          'lost',
          'dup',
          'broker CPU',
          'clients CPU',
          'frames / ws msg',
          'deliveries / broker CPU-s',
          'broker RSS MB (start → peak)',
          'notes',
        ],
        deliveryRows(results),
      ),
      '',
    );
  }
  if (results.rounds.some((r) => r.idle.size > 0)) {
    out.push('## Idle connections', '');
    out.push(
      markdownTable(
        [
          ...(many ? ['round'] : []),
          'target',
          'connections',
          'open s',
          'RSS before MB',
          'RSS after MB',
          'KiB / connection',
          'KiB / connection after full GC',
          'notes',
        ],
        idleRows(results),
      ),
      '',
    );
  }
  const goals = goalRows(results);
  if (goals.length > 0) {
    out.push(
      '## Goals (issue 3)',
      '',
      ...(many
        ? ['Ratios: median of the per-round ratios (lowest–highest); ms: median over rounds.', '']
        : []),
      markdownTable(['goal', 'measured', 'wanted', ''], goals),
      '',
    );
  }
  out.push('## How it was measured', '', ...method, '');
  return out.join('\n');
}
