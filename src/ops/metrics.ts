/**
 * Prometheus metrics of one broker, in a registry of its own (several
 * brokers in one process do not collide). Sessions and destinations only add
 * to plain counters (`BrokerStats`); the metrics read them when scraped, in
 * `collect()` callbacks, so that a frame or a delivery never calls prom-client.
 * docs/operations.md "Metrics" lists every name.
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
  Registry,
} from 'prom-client';
import type { DelayCounts } from '../broker/seams.js';
import { type Census, deepestQueues, type Observed, TOP_QUEUES, takeCensus } from './census.js';

/** Kafka produce latency buckets, seconds: from a fast local ack to a slow ISR. */
const PRODUCE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** How long one census serves the metrics of one scrape, ms. */
const CENSUS_MS = 100;

/**
 * Makes the registry of `broker`'s metrics, prom-client's default process
 * metrics (event-loop lag, GC, heap) included. `registry.metrics()` is the
 * text a scrape gets; `registry.contentType` its content type.
 */
export function createMetrics(broker: Observed): Registry {
  const registry = new Registry();
  const registers = [registry];
  const stats = broker.router.stats;
  let census: Census | undefined;
  const now = (): Census => {
    if (!census || Date.now() - census.at > CENSUS_MS) census = takeCensus(broker);
    return census;
  };

  gauge(
    registry,
    'stompbus_connections',
    'Open client connections, by transport.',
    ['transport'],
    (g) => {
      const { connections } = now();
      g.set({ transport: 'websocket' }, connections.websocket);
      g.set({ transport: 'tcp' }, connections.tcp);
    },
  );
  counter(
    registry,
    'stompbus_connections_accepted_total',
    'Client connections accepted, by transport.',
    ['transport'],
    (c) => {
      c.inc({ transport: 'websocket' }, stats.accepted.websocket);
      c.inc({ transport: 'tcp' }, stats.accepted.tcp);
    },
  );
  gauge(registry, 'stompbus_sessions', 'Connected STOMP sessions (CONNECTED sent).', [], (g) =>
    g.set(now().sessions),
  );
  gauge(registry, 'stompbus_subscriptions', 'Subscriptions of the open sessions.', [], (g) =>
    g.set(now().subscriptions),
  );
  gauge(
    registry,
    'stompbus_destinations',
    'Destinations in use (subscribed or holding messages).',
    [],
    (g) => g.set(now().destinations.length),
  );
  counter(
    registry,
    'stompbus_frames_received_total',
    'Frames received from clients, by command.',
    ['command'],
    (c) => {
      for (const [command, n] of Object.entries(stats.received)) c.inc({ command }, n);
    },
  );
  counter(
    registry,
    'stompbus_frames_sent_total',
    'Frames sent to clients, by command.',
    ['command'],
    (c) => {
      for (const [command, n] of Object.entries(stats.sent)) c.inc({ command }, n);
    },
  );
  counter(
    registry,
    'stompbus_messages_delivered_total',
    'MESSAGE frames delivered to subscribers.',
    [],
    (c) => c.inc(stats.sent.MESSAGE),
  );
  counter(registry, 'stompbus_received_bytes_total', 'Bytes read from clients.', [], (c) =>
    c.inc(stats.bytesIn),
  );
  counter(registry, 'stompbus_sent_bytes_total', 'Bytes written to clients.', [], (c) =>
    c.inc(stats.bytesOut),
  );
  counter(registry, 'stompbus_errors_total', 'ERROR frames sent, by error code.', ['code'], (c) => {
    for (const [code, n] of stats.errors) c.inc({ code }, n);
  });
  counter(
    registry,
    'stompbus_slow_consumer_disconnects_total',
    'Connections closed for reading too slowly (STOMP_ERR_SLOW_CONSUMER).',
    [],
    (c) => c.inc(stats.errors.get('STOMP_ERR_SLOW_CONSUMER') ?? 0),
  );
  gauge(
    registry,
    'stompbus_queued_messages',
    'Messages waiting in /queue/ destinations, all together.',
    [],
    (g) => g.set(now().queued),
  );
  gauge(
    registry,
    'stompbus_queue_depth',
    `Messages waiting in each of the ${TOP_QUEUES} deepest queues.`,
    ['queue'],
    (g) => {
      for (const d of deepestQueues(now())) g.set({ queue: d.name }, d.depth);
    },
  );
  counter(
    registry,
    'stompbus_dead_letters_total',
    'Messages moved to a dead-letter queue.',
    [],
    (c) => c.inc(stats.deadLetters),
  );
  gauge(
    registry,
    'stompbus_history_messages',
    'Messages kept for resumes, all topics together.',
    [],
    (g) => g.set(now().history),
  );
  gauge(
    registry,
    'stompbus_mailbox_messages',
    "Messages kept in users' queues until consumed.",
    [],
    (g) => g.set(now().mailboxes),
  );

  const cluster = broker.fanout.stats;
  if (cluster) {
    const produce = new Histogram({
      name: 'stompbus_kafka_produce_duration_seconds',
      help: 'Kafka produce requests, from sending to the ack of all in-sync replicas.',
      buckets: PRODUCE_BUCKETS,
      registers,
    });
    // One observation per produce request (a batch of SENDs), not per SEND.
    cluster.onProduced((seconds) => produce.observe(seconds));
    // A backend of its own may count neither (both are optional in ClusterStats).
    const produceWait = cluster.produceWait?.bind(cluster);
    if (produceWait) {
      counted(
        registry,
        'stompbus_kafka_produce_wait_seconds',
        "Records this instance produced (SENDs and its own), from entering the produce queue to Kafka's ack: what a SEND's RECEIPT waits for Kafka.",
        undefined,
        () => [[undefined, produceWait()]],
      );
    }
    const recordDelay = cluster.recordDelay?.bind(cluster);
    if (recordDelay) {
      counted(
        registry,
        'stompbus_kafka_record_delay_seconds',
        "Live message records, from the record's timestamp (the producer's clock at its produce request, or Kafka's at append on a LogAppendTime topic) to this instance handing them to delivery, by topic.",
        'topic',
        () => recordDelay(),
      );
    }
    counter(
      registry,
      'stompbus_kafka_records_consumed_total',
      'Kafka records consumed, by topic.',
      ['topic'],
      (c) => {
        for (const [topic, n] of cluster.recordsConsumed()) c.inc({ topic }, n);
      },
    );
    gauge(
      registry,
      'stompbus_kafka_consumer_lag',
      'Records between this instance and the end of each partition, as of its last fetch.',
      ['topic', 'partition'],
      (g) => {
        for (const p of cluster.lag())
          g.set({ topic: p.topic, partition: String(p.partition) }, p.lag);
      },
    );
    gauge(
      registry,
      'stompbus_cluster_instances',
      'Instances in the connection registry, this one included.',
      [],
      (g) => g.set(cluster.instances().length + 1),
    );
    if (cluster.queues?.()) {
      const queues = () => cluster.queues?.();
      gauge(
        registry,
        'stompbus_queue_partitions_owned',
        'Partitions of the queues topic this instance owns now (1 each): it decides who gets their messages.',
        ['partition'],
        (g) => {
          for (const p of queues()?.ownedPartitions ?? []) g.set({ partition: String(p) }, 1);
        },
      );
      counter(
        registry,
        'stompbus_queue_assignments_total',
        'Cluster-queue messages this instance, as owner, gave to a consumer (redeliveries included).',
        [],
        (c) => c.inc(queues()?.assigned ?? 0),
      );
      counter(
        registry,
        'stompbus_queue_redeliveries_total',
        'Of those, redeliveries (after a NACK or a consumer gone).',
        [],
        (c) => c.inc(queues()?.redelivered ?? 0),
      );
      counter(
        registry,
        'stompbus_queue_dead_letters_total',
        'Cluster-queue messages this instance, as owner, moved to the dead letter queue.',
        [],
        (c) => c.inc(queues()?.deadLettered ?? 0),
      );
    }
  }

  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A gauge set from scratch at each scrape (labels that went away go with it). */
function gauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  fill: (g: Gauge) => void,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      if (labelNames.length > 0) this.reset();
      fill(this);
    },
  });
}

/**
 * A histogram counted outside prom-client ({@link DelayCounts}, one bucket
 * increment per record on the hot path), read at each scrape: one series per
 * entry of `read()`, labelled `labelName` when given.
 */
function counted(
  registry: Registry,
  name: string,
  help: string,
  labelName: string | undefined,
  read: () => Iterable<readonly [string | undefined, DelayCounts]>,
): void {
  registry.registerMetric(new CountedHistogram(name, help, labelName, read));
}

class CountedHistogram extends Histogram {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly labelName: string | undefined,
    private readonly read: () => Iterable<readonly [string | undefined, DelayCounts]>,
  ) {
    super({ name: metricName, help: helpText, registers: [] });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.snapshot();
  }

  /** What the registry writes for a scrape (prom-client's Histogram has this besides `get`). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.snapshot();
  }

  private snapshot(): MetricObjectWithValues<MetricValueWithName<string>> {
    const values: MetricValueWithName<string>[] = [];
    for (const [label, counts] of this.read()) {
      const labels = this.labelName === undefined ? {} : { [this.labelName]: label ?? '' };
      let cumulative = 0;
      counts.bounds.forEach((bound, i) => {
        cumulative += counts.counts[i] ?? 0;
        values.push({
          metricName: `${this.metricName}_bucket`,
          labels: { ...labels, le: bound },
          value: cumulative,
        });
      });
      values.push(
        {
          metricName: `${this.metricName}_bucket`,
          labels: { ...labels, le: '+Inf' },
          value: counts.count,
        },
        { metricName: `${this.metricName}_sum`, labels, value: counts.sum },
        { metricName: `${this.metricName}_count`, labels, value: counts.count },
      );
    }
    // prom-client's types declare `type` a numeric enum; its registry writes the string, as
    // its own Histogram gives it.
    const type = 'histogram' as unknown as MetricType;
    return {
      name: this.metricName,
      help: this.helpText,
      type,
      values,
      aggregator: 'sum',
      collect: () => undefined,
    };
  }
}

/** A counter read from a plain number at each scrape. */
function counter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  fill: (c: Counter) => void,
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      fill(this);
    },
  });
}
