/**
 * A model on paper of cluster interest at scale (docs/cluster-interest.md): what each of
 * 100 instances would fetch from Kafka at 1,000,000 messages/s with `--kafka-interest all`
 * and `subscribed`, for a few interest distributions and partition counts. No Kafka, no
 * instances: arithmetic only.
 *
 * ```sh
 * npx tsx bench/interest-model.ts
 * ```
 *
 * Assumptions: traffic spread evenly over D destinations, destinations spread evenly over
 * partitions by the key hash; an instance fetches a partition when one of its k
 * destinations is in it; 70 µs of CPU per fetched record (the figure measured in
 * bench/cluster.bench.ts at 5,000 messages/s) and 300 bytes per record on the wire.
 */

const INSTANCES = 100;
const RATE = 1_000_000;
const DESTINATIONS = 100_000;
const CPU_US_PER_RECORD = 70;
const BYTES_PER_RECORD = 300;

interface Distribution {
  readonly name: string;
  /** Expected share of partitions an instance reads, of `partitions`. */
  readonly share: (partitions: number) => number;
}

/** Share of P partitions hit by k keys thrown at random. */
const randomShare = (k: number) => (partitions: number) => 1 - (1 - 1 / partitions) ** k;

const distributions: Distribution[] = [
  { name: 'random, 10 destinations per instance', share: randomShare(10) },
  { name: 'random, 1,000 per instance', share: randomShare(1_000) },
  {
    // A proxy routes a destination's clients to one instance by the same hash: each
    // instance owns P/C partitions (at least one).
    name: 'by partition (proxy routes by destination), 1,000 per instance',
    share: (partitions) => Math.max(1, Math.ceil(partitions / INSTANCES)) / partitions,
  },
  {
    // One hot destination everybody subscribes to, carrying 20% of the traffic, plus 10
    // random cold ones per instance: the hot partition's share is read by everyone.
    name: 'one hot destination (20% of traffic) + 10 random',
    share: (partitions) => {
      const hot = 0.2 + 0.8 / partitions;
      const cold = randomShare(10)(partitions) * 0.8;
      return Math.min(1, hot + cold - (0.8 / partitions) * randomShare(10)(partitions));
    },
  },
];

const partitionCounts = [6, 60, 600, 6_000];

function row(cells: Array<string | number>): string {
  return `| ${cells.join(' | ')} |`;
}

const lines: string[] = [
  `${INSTANCES} instances, ${RATE.toLocaleString('en')} messages/s over ${DESTINATIONS.toLocaleString('en')} destinations`,
  '',
  row([
    'interest',
    'partitions',
    'records/s fetched per instance',
    'of all',
    'CPU per instance (cores)',
    'Kafka egress, all instances',
  ]),
  row(['---', '---:', '---:', '---:', '---:', '---:']),
];
const allCpu = (RATE * CPU_US_PER_RECORD) / 1e6;
lines.push(
  row([
    '`all` (any distribution)',
    'any',
    RATE.toLocaleString('en'),
    '100%',
    allCpu.toFixed(1),
    `${((INSTANCES * RATE * BYTES_PER_RECORD) / 1e9).toFixed(0)} GB/s`,
  ]),
);
for (const distribution of distributions) {
  for (const partitions of partitionCounts) {
    const share = Math.min(1, distribution.share(partitions));
    const perInstance = RATE * share;
    lines.push(
      row([
        distribution.name,
        partitions.toLocaleString('en'),
        Math.round(perInstance).toLocaleString('en'),
        `${(100 * share).toFixed(1)}%`,
        ((perInstance * CPU_US_PER_RECORD) / 1e6).toFixed(2),
        `${((INSTANCES * perInstance * BYTES_PER_RECORD) / 1e9).toFixed(1)} GB/s`,
      ]),
    );
  }
}
console.log(lines.join('\n'));
