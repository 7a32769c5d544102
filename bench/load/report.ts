/** The markdown the load harness prints and writes to bench/results/load.md. */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { CpuUse, DeliveryResult, IdleResult } from './scenarios.js';
import { formatMs, formatRate, formatRatio, markdownTable } from './stats.js';
import { REPO, type TargetName } from './targets.js';

/** A delivery result, or why the run failed. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

/** Every result of one harness run, by scenario label and target. */
export interface Results {
  delivery: Map<string, Map<TargetName, Outcome<DeliveryResult>>>;
  idle: Map<TargetName, Outcome<IdleResult>>;
}

const TARGET_LABEL: Record<TargetName, string> = {
  stompbus: 'stompbus',
  ws: 'bare ws',
  rabbitmq: 'RabbitMQ Web-STOMP',
};

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

function deliveryRows(results: Results): string[][] {
  const rows: string[][] = [];
  for (const [scenario, byTarget] of results.delivery) {
    for (const [name, outcome] of byTarget) {
      if (!outcome.ok) {
        rows.push([scenario, TARGET_LABEL[name], ...Array<string>(12).fill('–'), outcome.error]);
        continue;
      }
      const r = outcome.value;
      rows.push([
        scenario,
        TARGET_LABEL[name],
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
  }
  return rows;
}

const kib = (bytes: number | undefined) => (bytes === undefined ? '–' : (bytes / 1024).toFixed(1));

function idleRows(results: Results): string[][] {
  return [...results.idle].map(([name, outcome]) => {
    if (!outcome.ok) return [TARGET_LABEL[name], '–', '–', '–', '–', '–', '–', outcome.error];
    const r = outcome.value;
    return [
      TARGET_LABEL[name],
      r.opened === r.wanted ? String(r.opened) : `${r.opened}/${r.wanted}`,
      r.openSeconds.toFixed(1),
      mb(r.rssBefore),
      mb(r.rssAfter),
      kib(r.perConnection),
      kib(r.perConnectionAfterGc),
      r.notes.join('; '),
    ];
  });
}

function delivery(results: Results, scenario: string, name: TargetName) {
  const outcome = results.delivery.get(scenario)?.get(name);
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

function goalRows(results: Results): string[][] {
  const rows: string[][] = [];
  for (const scenario of results.delivery.keys()) {
    const sb = delivery(results, scenario, 'stompbus');
    const ws = delivery(results, scenario, 'ws');
    const rmq = delivery(results, scenario, 'rabbitmq');
    if (scenario.startsWith('fan-out')) {
      const toWs = ratio(sb?.perSecond, ws?.perSecond);
      const toRmq = ratio(sb?.perSecond, rmq?.perSecond);
      rows.push(
        goal(
          `${scenario}: deliveries/s stompbus ÷ bare ws`,
          formatRatio(toWs),
          '≥ 0.70×',
          toWs === undefined ? undefined : toWs >= 0.7,
        ),
      );
      rows.push(
        goal(
          `${scenario}: deliveries/s stompbus ÷ RabbitMQ`,
          formatRatio(toRmq),
          '≥ 3×',
          toRmq === undefined ? undefined : toRmq >= 3,
        ),
      );
      const cpuToWs = ratio(perCpu(sb), perCpu(ws));
      const cpuToRmq = ratio(perCpu(sb), perCpu(rmq));
      rows.push(
        goal(
          `${scenario}: deliveries per broker CPU-s stompbus ÷ bare ws (context)`,
          formatRatio(cpuToWs),
          '',
          null,
        ),
      );
      rows.push(
        goal(
          `${scenario}: deliveries per broker CPU-s stompbus ÷ RabbitMQ (context)`,
          formatRatio(cpuToRmq),
          '',
          null,
        ),
      );
      const lower = sb?.p99 !== undefined && rmq?.p99 !== undefined ? sb.p99 < rmq.p99 : undefined;
      rows.push(
        goal(
          `${scenario}: p99 stompbus vs RabbitMQ`,
          `${formatMs(sb?.p99)} vs ${formatMs(rmq?.p99)} ms`,
          'lower',
          lower,
        ),
      );
    } else if (scenario.startsWith('paced')) {
      const r = ratio(sb?.p99, ws?.p99);
      rows.push(
        goal(
          `${scenario}: p99 stompbus ÷ bare ws`,
          `${formatRatio(r)} (${formatMs(sb?.p99)} vs ${formatMs(ws?.p99)} ms)`,
          '≤ 1.2×',
          r === undefined ? undefined : r <= 1.2,
        ),
      );
    }
  }
  const sbIdle = results.idle.get('stompbus');
  const wsIdle = results.idle.get('ws');
  if (sbIdle?.ok && wsIdle?.ok) {
    const r = ratio(sbIdle.value.perConnection, wsIdle.value.perConnection);
    rows.push(
      goal(
        'idle: memory per connection stompbus ÷ bare ws',
        `${formatRatio(r)} (${kib(sbIdle.value.perConnection)} vs ${kib(wsIdle.value.perConnection)} KiB)`,
        '≤ 1.3×',
        r === undefined ? undefined : r <= 1.3,
      ),
    );
    const gc = ratio(sbIdle.value.perConnectionAfterGc, wsIdle.value.perConnectionAfterGc);
    rows.push(
      goal(
        'idle: the same after a full GC (context)',
        `${formatRatio(gc)} (${kib(sbIdle.value.perConnectionAfterGc)} vs ${kib(wsIdle.value.perConnectionAfterGc)} KiB)`,
        '',
        null,
      ),
    );
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
  if (results.delivery.size > 0) {
    out.push('## Delivery', '');
    out.push(
      markdownTable(
        [
          'scenario',
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
  if (results.idle.size > 0) {
    out.push('## Idle connections', '');
    out.push(
      markdownTable(
        [
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
      markdownTable(['goal', 'measured', 'wanted', ''], goals),
      '',
    );
  }
  out.push('## How it was measured', '', ...method, '');
  return out.join('\n');
}
