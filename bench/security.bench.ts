/**
 * Security benchmark (issue 11, "Done means"):
 *
 * 1. fan-out deliveries/s with 1,000 ACL rules loaded (`--acl-file`) against none, the
 *    two brokers in alternating order round after round, as the ratio per round;
 * 2. CONNECTs per second with no auth, a passcode, an scrypt-hashed passcode, HS256
 *    and RS256 tokens;
 * 3. what one authorization decision costs in process, with 1,000 rules.
 *
 * ```sh
 * npx tsx bench/security.bench.ts [--rounds 4] [--quick] [--parts micro,inproc,fanout,connect]
 *   [--src <checkout>]   # the in-process parts measure another checkout's src/
 * ```
 *
 * Compiles src/ into bench/load/.build-security (removed at the end) and starts that
 * build through the load harness's command line (bench/load/targets.ts), with the flags
 * of each case added; fan-out clients are the load harness's worker processes. Writes
 * bench/results/security.md (or `--out`). Every process started here is stopped by PID.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import type { AclRule } from '../src/security/acl.js';
import { budgetFromEnv, compare, markdownTable, median } from './harness.js';
import { type DeliveryPlan, runDelivery } from './load/scenarios.js';
import { formatRate } from './load/stats.js';
import { children, compileCheckout, REPO } from './load/targets.js';
import { connectsReport, loginKinds, withBroker } from './security-connect.js';
import { inProcessCases, inProcessFanout, type Lib, loadLib } from './security-inproc.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    quick: { type: 'boolean', default: false },
    parts: { type: 'string', default: 'micro,inproc,fanout,connect' },
    src: { type: 'string' },
    out: { type: 'string', default: 'bench/results/security.md' },
  },
});
const rounds = Number(values.rounds);
const quick = values.quick;
const parts = values.parts.split(',');
const log = (line: string) => process.stderr.write(`[security] ${line}\n`);
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim();
const range = (xs: number[]) => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;

/** 1,000 rules as an operator might write them; the bench user's grant comes last. */
function thousandRules(): AclRule[] {
  const rules: AclRule[] = [];
  for (let i = 0; i < 999; i++) {
    rules.push(
      i % 2
        ? { user: `user${i}`, read: [`/topic/team${i}.*`], write: [`/topic/team${i}.{user}`] }
        : {
            user: '*',
            read: [`/topic/app${i}.**`, `/user/{user}/**`],
            write: [`/queue/app${i}.*`],
          },
    );
  }
  rules.push({ user: 'bench', read: ['/topic/bench.*'], write: ['/topic/bench.*'] });
  return rules;
}

/** Nanoseconds per decision of the ACL hooks, in process (bench/harness.ts rounds). */
function micro(lib: Lib): string[] {
  const rules = thousandRules();
  const cached = lib.aclAuthorizer(rules);
  const uncached = lib.aclAuthorizer(rules, { cacheSize: 0 });
  const scoped = lib.aclAuthorizer([]);
  const scopes = ['openid', 'stompbus.read:/topic/a.*', 'stompbus.write:/topic/bench.*'];
  const batch = 1000;
  const cases: Array<[string, () => void]> = [
    ['1,000 rules, cached decision', () => cached.allows('write', 'bench', [], '/topic/bench.x')],
    [
      '1,000 rules, no cache, granted',
      () => uncached.allows('write', 'bench', [], '/topic/bench.x'),
    ],
    [
      '1,000 rules, no cache, refused',
      () => uncached.allows('write', 'bench', [], '/topic/other.x'),
    ],
    [
      'scopes only (3 scopes), granted',
      () => scoped.allows('write', 'bench', scopes, '/topic/bench.x'),
    ],
  ];
  const runs = cases.map(([, check]) => () => {
    for (let i = 0; i < batch; i++) check();
  });
  const rates = compare(runs, budgetFromEnv());
  const rows = cases.map(([name], i) => {
    const rate = rates[i] as { perSecond: number; spread: number };
    return [
      name,
      (1e9 / (rate.perSecond * batch)).toFixed(0),
      `${(rate.spread * 100).toFixed(0)}%`,
    ];
  });
  return [
    '## One authorization decision, in process',
    '',
    'What `authorizeSend` costs per SEND (and `authorizeSubscribe` per SUBSCRIBE); it never runs per delivery.',
    '',
    markdownTable(['case', 'ns per decision', 'spread'], rows),
    '',
  ];
}

/** Fan-out in one process: the hooks' share of a delivery's cost, by pairs of batches. */
async function inProcess(lib: Lib): Promise<string[]> {
  const rows: string[][] = [];
  for (const n of quick ? [100] : [10, 100, 1000]) {
    for (const [name, hooks] of inProcessCases(lib, thousandRules())) {
      log(`in process, fan-out ${n}: ${name}`);
      const res = await inProcessFanout(lib, hooks, n, quick ? 3 : rounds * 2);
      rows.push([
        `fan-out ${n}`,
        name,
        formatRate(median(res.none)),
        formatRate(median(res.hooked)),
        median(res.ratios).toFixed(3),
        range(res.ratios),
      ]);
    }
  }
  const src = values.src ? `the src/ of \`${values.src}\`` : "this checkout's src/";
  return [
    '## Fan-out in one process: what the hooks cost per delivery',
    '',
    `Two brokers of ${src} in this process, one with the hooks and one without, sessions on in-memory connections; batches of SENDs (10,000 deliveries each) to one side then the other, 100 pairs a round; ratio = median over the pairs of (time of the batch without hooks ÷ time with), so 1.000 is no cost and 0.95 is 5% slower.`,
    '',
    markdownTable(
      [
        'scenario',
        'case',
        'none: deliveries/s',
        'with hooks: deliveries/s',
        'ratio (median of rounds)',
        'range over rounds',
      ],
      rows,
    ),
    '',
  ];
}

function fanoutPlan(subscribers: number): DeliveryPlan {
  return {
    mode: 'topic',
    destination: '/topic/bench.fanout',
    subscribers,
    processes: subscribers >= 1000 ? 4 : 2,
    pace: 'max',
    window: Math.max(4, Math.round(50_000 / subscribers)),
    rate: 0,
    durationMs: quick ? 2000 : 5000,
    warmupMs: quick ? 500 : 1000,
    drainMs: quick ? 5000 : 20_000,
    bodySize: 256,
  };
}

/** One fan-out run's figures. */
interface FanoutSide {
  rate: number;
  perCpu: number;
  lost: number;
}

const FANOUT_HEADER = [
  'scenario',
  'round',
  'none: deliveries/s',
  'rules: deliveries/s',
  'rules ÷ none',
  'none: per broker CPU-s',
  'rules: per broker CPU-s',
  'rules ÷ none',
  'lost (none / rules)',
];

/** One round: both brokers one after the other, the order alternating with `round`. */
async function fanoutRound(build: string, aclFile: string, n: number, round: number) {
  const sides: Array<[string, string[]]> = [
    ['none', []],
    ['rules', ['--acl-file', aclFile]],
  ];
  const got = new Map<string, FanoutSide>();
  for (const [name, flags] of round % 2 ? sides : [...sides].reverse()) {
    log(`fan-out ${n}, round ${round}: ${name}`);
    const res = await withBroker(build, flags, (b) => runDelivery(b.target, fanoutPlan(n)));
    const rate = res.perSecond ?? Number.NaN;
    got.set(name, { rate, perCpu: rate / (res.brokerCpu?.cores ?? Number.NaN), lost: res.lost });
  }
  return { none: got.get('none') as FanoutSide, acl: got.get('rules') as FanoutSide };
}

/** Fan-out to 100 and 1,000 subscribers with and without the 1,000 rules. */
async function fanout(build: string, aclFile: string): Promise<string[]> {
  const out = ['## Fan-out: 1,000 ACL rules vs none', ''];
  const summary: string[][] = [];
  for (const n of quick ? [100] : [100, 1000]) {
    const rows: string[][] = [];
    const ratios = { rate: [] as number[], perCpu: [] as number[] };
    for (let r = 1; r <= rounds; r++) {
      const { none, acl } = await fanoutRound(build, aclFile, n, r);
      ratios.rate.push(acl.rate / none.rate);
      ratios.perCpu.push(acl.perCpu / none.perCpu);
      rows.push([
        `fan-out ${n}`,
        String(r),
        formatRate(none.rate),
        formatRate(acl.rate),
        (acl.rate / none.rate).toFixed(3),
        formatRate(none.perCpu),
        formatRate(acl.perCpu),
        (acl.perCpu / none.perCpu).toFixed(3),
        `${none.lost} / ${acl.lost}`,
      ]);
    }
    out.push(markdownTable(FANOUT_HEADER, rows), '');
    const row = (metric: string, xs: number[]) =>
      summary.push([`fan-out ${n}`, metric, median(xs).toFixed(3), range(xs)]);
    row('deliveries/s', ratios.rate);
    row('deliveries / broker CPU-s', ratios.perCpu);
  }
  out.push('Ratio 1,000 rules ÷ none per round (goal: within 5%, i.e. ≥ 0.95):', '');
  out.push(markdownTable(['scenario', 'metric', 'median', 'range over rounds'], summary), '');
  return out;
}

function machine(label: string): string[] {
  return [
    `### Machine ${label}`,
    '',
    '```',
    `$ nproc\n${sh('nproc')}`,
    `$ lscpu | head -15\n${sh('lscpu | head -15')}`,
    `$ node -v\n${process.version}`,
    `$ uptime\n${sh('uptime')}`,
    `$ ps -eo pcpu,etime,args --sort=-pcpu | head -6   # what else was running\n${sh('ps -eo pcpu,etime,args --sort=-pcpu | head -6 | cut -c1-160')}`,
    '```',
    '',
  ];
}

async function main(): Promise<void> {
  const watchdog = setTimeout(
    () => {
      log('watchdog: the run overstayed, stopping what it started');
      for (const child of children) child.kill('SIGKILL');
      process.exit(1);
    },
    20 * 60_000 * Math.max(1, rounds / 4),
  );
  watchdog.unref();
  const started = new Date().toISOString();
  const head = [
    '# Security benchmark (issue 11)',
    '',
    `- date: ${started}`,
    `- code: ${sh('git log -1 --format="%h %s"').slice(0, 100)} (+ ${sh('git status --porcelain -- src | wc -l')} uncommitted change(s) in src/; the in-process parts load src/ at the start, the others compile it then)`,
    `- command: \`${['npx tsx bench/security.bench.ts', ...process.argv.slice(2)].join(' ')}\``,
    `- rounds: ${rounds}${quick ? ' (quick)' : ''}`,
    '',
    ...machine('at start'),
  ];
  const dir = mkdtempSync(`${tmpdir()}/stompbus-security-bench-`);
  const aclFile = `${dir}/acl-1000.json`;
  writeFileSync(aclFile, JSON.stringify({ rules: thousandRules() }));
  const kinds = parts.includes('connect') ? await loginKinds(dir) : [];
  const body: string[] = [];
  // Written after every part: a run that fails late keeps what it measured.
  const save = (more: string[]) => {
    body.push(...more);
    const end = machine(`at end (load average ${loadavg()[0]?.toFixed(2)})`);
    writeFileSync(values.out, [...head, ...body, ...end].join('\n'));
  };
  const lib = await loadLib(values.src ?? REPO);
  if (parts.includes('micro')) save(micro(lib));
  if (parts.includes('inproc')) save(await inProcess(lib));
  const build = parts.some((p) => p === 'fanout' || p === 'connect')
    ? compileCheckout(REPO, '.build-security')
    : undefined;
  try {
    if (build && parts.includes('fanout')) save(await fanout(build.build, aclFile));
    if (build && parts.includes('connect'))
      save(await connectsReport(build.build, kinds, { rounds, quick, log }));
  } finally {
    // Whatever failed, no broker or client process outlives the run.
    for (const child of children) child.kill('SIGKILL');
    rmSync(`${REPO}bench/load/.build-security`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
  process.stdout.write(`${readFileSync(values.out, 'utf8')}\n`);
}

await main();
