import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { destinationKind } from '../broker/destination.js';
import type { Outgoing, Position } from '../broker/message.js';
import type {
  ClusterStats,
  DurableLog,
  Fanout,
  FanoutReadiness,
  FanoutSink,
  MessageBus,
  Registry,
} from '../broker/seams.js';
import { StompError } from '../errors.js';
import { ClusterQueues } from './cluster-queues.js';
import { DelayCounter } from './delays.js';
import { Duplicates } from './duplicates.js';
import { FetchCounts, PartitionInterest } from './interest.js';
import type { ConsumedRecord } from './kafka-client.js';
import { KafkaLink, parseBrokers } from './kafka-link.js';
import { DEFAULT_KAFKA_FANOUT_OPTIONS, type KafkaFanoutOptions } from './kafka-options.js';
import { describe, kafkaLog, type Log, Notices, unavailable } from './notices.js';
import { Offsets, partitionOf } from './offsets.js';
import { Presence } from './presence.js';
import { ProduceQueue } from './produce-queue.js';
import { ReadYourWrites } from './read-your-writes.js';
import { consumedId, keyOfUser, RecordMapper, userKey } from './records.js';
import { type ClusterTopics, clusterTopics, topicPlan } from './topics.js';

/**
 * Longest idle fetch with cluster interest, ms: the first live message after a pick-up
 * waits for the fetch in flight (bench/interest-pickup.bench.ts: about this long).
 */
const INTEREST_FETCH_MAX_WAIT_MS = 100;

/**
 * Cluster mode (docs/clustering.md): every `/topic/…` SEND goes to Kafka
 * with its destination as the key, and every instance reads what it wants of it
 * with a fetch loop of its own (no consumer group) and delivers to its local
 * subscribers, its own SENDs included, so all instances see one order per
 * destination. Bridged
 * Kafka topics map to one destination each, both ways.
 *
 * Users (issue 5): user destinations travel on a topic of their own
 * (`<topic>.users`), where consuming a user-queue message is recorded too, so
 * every instance that reads a user's partition keeps the same mailbox (with
 * cluster interest: those where the user has a session). At start-up an instance
 * reads back the recent history of its topics (kept, not delivered), so a
 * client resumes on any instance. A third topic (`<topic>.presence`) carries
 * each instance's connected users: the connection registry. Acked means gone
 * everywhere (issue 14): a consumption resolves once Kafka has its record
 * (the ACK's RECEIPT waits), and a user-queue SUBSCRIBE waits until this
 * instance has read the users topic up to its end ({@link ReadYourWrites}).
 *
 * Kafka away for a while (restarting, not reachable yet at start-up) only
 * delays the RECEIPTs: SENDs wait for it in the produce queue, bounded in
 * count, bytes and time (docs/operations.md "Kafka outages").
 *
 * This class only puts the pieces together: {@link KafkaLink} (connecting and
 * retrying), {@link ProduceQueue} (batched produce requests, retried),
 * {@link Offsets} (positions, never committed), {@link Duplicates} (records a
 * retry wrote twice), {@link RecordMapper} (messages ↔ records),
 * {@link ReadYourWrites} and {@link Presence} (the registry).
 */
export class KafkaFanout implements Fanout {
  readonly options: KafkaFanoutOptions;
  /** This instance in the connection registry (and its consumer's name). */
  readonly instanceId = `stompbus-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  /** Publishes through Kafka: every instance delivers what this one produced. */
  readonly bus: MessageBus;
  /** Records fetched from Kafka per topic and partition since start (what Kafka served this instance). */
  readonly fetched = new FetchCounts();
  /** Consumption records on the users topic; resumes vouched for by what was read. */
  readonly log: DurableLog = {
    consumed: (message) => this.consumed(message),
    coveredFrom: (destination, epoch) => this.coveredFrom(destination, epoch),
  };
  /** The connection registry on the presence topic. */
  readonly registry: Registry;
  /** With `queues: 'cluster'`: `/queue/…` shared by every instance through the queues topic. */
  readonly queues: ClusterQueues | undefined;
  /** Records consumed, lag, produce latency and the instances seen (for the metrics). */
  readonly stats: ClusterStats;
  private readonly produceListeners: Array<(seconds: number) => void> = [];
  private readonly topics: ClusterTopics;
  private readonly records: RecordMapper;
  private readonly offsets = new Offsets({
    // Only bridged topics have outside producers (whose transaction markers leave gaps).
    gapless: (topic) => this.topics.bridges[topic] === undefined,
    onGap: (topic, partition, next, offset) =>
      this.lines(
        'warn',
        `offsets ${next} to ${offset - 1n} of ${topic} partition ${partition} were not read; ` +
          'resumes from before them are incomplete',
      ),
    refetch: (topic, partition, offset) => {
      const consumer = this.link.activeConsumer;
      if (!consumer?.seek) return false;
      consumer.seek(topic, partition, offset);
      return true;
    },
  });
  private readonly duplicates = new Duplicates();
  /** Live message records' age when handed to delivery, by topic. */
  private readonly delays = new Map<string, DelayCounter>();
  /** The batch being read (one partition of one topic): its topic's delays, and when it was handed over (ms since 1970). */
  private batchDelays: DelayCounter | undefined;
  private batchAt = 0;
  private readonly notices: Notices;
  /** Log lines, to `options.logger`. */
  private readonly lines: Log;
  private readonly presence: Presence;
  private readonly link: KafkaLink;
  private readonly queue: ProduceQueue;
  /** With `--kafka-interest subscribed`: which partitions of the topics topic are fetched. */
  private readonly interest: PartitionInterest | undefined;
  /** With `--kafka-interest subscribed`: which partitions of the users topic are fetched (by user). */
  private readonly userInterest: PartitionInterest | undefined;
  /** User-queue SUBSCRIBEs held until the consumption recorded before them is read. */
  private readonly readYourWrites: ReadYourWrites;
  private sink: FanoutSink = { deliver: () => {}, consumed: () => {}, localUsers: () => [] };
  /** Partitions of the queues topic, once connected. */
  private queuePartitions = 0;

  constructor(options: Partial<KafkaFanoutOptions> & Pick<KafkaFanoutOptions, 'brokers'>) {
    this.options = { ...DEFAULT_KAFKA_FANOUT_OPTIONS, ...options };
    const brokers = parseBrokers(this.options.brokers);
    this.topics = clusterTopics(this.options.topic, this.options.bridges);
    this.records = new RecordMapper(this.topics, this.options.recordFormat);
    this.lines = kafkaLog(this.options.logger);
    this.notices = new Notices(this.lines);
    const plan = topicPlan(this.topics, this.options);
    const byInterest = this.options.interest === 'subscribed';
    const interest = byInterest ? this.createInterest(this.topics.topic) : undefined;
    const users = byInterest ? this.createInterest(this.topics.usersTopic) : undefined;
    this.interest = interest;
    this.userInterest = users;
    this.readYourWrites = new ReadYourWrites({
      topic: this.topics.usersTopic,
      timeoutMs: this.options.startTimeoutMs,
      client: () => (this.link.ready ? this.link.requireClient() : undefined),
      offsets: this.offsets,
      log: this.lines,
    });
    this.bus =
      interest && users
        ? {
            publish: (message) => this.publish(message),
            interest: (destination, on) => {
              if (this.governed(destination)) interest.interest(destination, on);
            },
            reach: (destination, resumeAfter) =>
              this.reach(interest, users, destination, resumeAfter),
          }
        : {
            publish: (message) => this.publish(message),
            reach: (destination) => this.reach(undefined, undefined, destination, undefined),
          };
    // With interest the topics and users topics are read on demand, per partition.
    const readFrom = byInterest
      ? plan.readFrom.filter(
          (r) => r.topic !== this.topics.topic && r.topic !== this.topics.usersTopic,
        )
      : plan.readFrom;
    this.link = new KafkaLink({
      ...this.options,
      log: this.lines,
      brokers,
      groupBase: this.instanceId,
      topics: plan.create,
      prepare: async (client) => {
        await this.offsets.readStart(client, readFrom);
        interest?.configure((await client.latestOffsets(this.topics.topic)).size);
        users?.configure((await client.latestOffsets(this.topics.usersTopic)).size);
        if (this.queues) {
          this.queuePartitions = (await client.latestOffsets(this.topics.queuesTopic)).size;
        }
      },
      paused:
        interest &&
        users &&
        ((topic, partition) =>
          interest.pausedAtJoin(topic, partition) || users.pausedAtJoin(topic, partition)),
      // A picked-up partition is fetched from the next fetch on: keep idle fetches short.
      fetchMaxWaitMs: interest ? INTEREST_FETCH_MAX_WAIT_MS : undefined,
      fetchIntervalMs: this.options.fetchIntervalMs,
      caughtUp: () => this.offsets.caughtUp(),
      positions: () => this.offsets.next,
      onRecords: (records) => this.onRecords(records),
      onPartitionEnd: (topic, partition, end) => this.offsets.partitionEnd(topic, partition, end),
      onConnected: () => {
        this.queue.wake();
        this.presence.start();
        if (this.queuePartitions > 0) this.queues?.connected(this.queuePartitions);
      },
    });
    this.queue = new ProduceQueue({
      ...this.options,
      log: this.lines,
      // Before the first connect the records wait (and are tried again) like in an outage.
      send: (records) =>
        this.link.ready
          ? this.link.requireClient().produce(records)
          : Promise.reject(new Error('not connected to Kafka')),
      onRecovered: () => this.link.kafkaBack(),
      onProduced: (seconds) => {
        for (const listener of this.produceListeners) listener(seconds);
      },
    });
    this.presence = new Presence({
      instanceId: this.instanceId,
      topic: this.topics.presenceTopic,
      intervalMs: this.options.presenceIntervalMs,
      localUsers: () => this.sink.localUsers(),
      status: () => ({ connections: this.sink.connections?.(), lag: this.totalLag() }),
      // An announcement is worth nothing once the next one is due.
      produce: (record) =>
        this.link.ready
          ? this.queue.push(record, this.options.presenceIntervalMs)
          : Promise.reject(unavailable('not connected')),
      warnOnce: (key, message) => this.notices.warnOnce(key, message),
    });
    this.registry = users
      ? {
          instanceId: this.instanceId,
          whereIs: (user) => this.presence.whereIs(user),
          usersChanged: (user, online) => {
            this.presence.usersChanged();
            // The user's partition is read while the user has a session here; picked up
            // (its mailbox read back) at once, so that the first SUBSCRIBE seldom waits.
            if (user !== undefined && online !== undefined) users.interest(keyOfUser(user), online);
          },
        }
      : this.presence;
    this.queues =
      this.options.queues === 'cluster'
        ? new ClusterQueues({
            instanceId: this.instanceId,
            topic: this.topics.queuesTopic,
            groupId: `${this.options.topic}.queue-owners`,
            policy: {
              maxQueueMessages: this.options.maxQueueMessages,
              maxDeliveries: this.options.maxDeliveries,
              deadLetterQueue: this.options.deadLetterQueue,
              maxAgeMs: this.options.queueMaxAgeMs,
              aliveTimeoutMs: 3 * this.options.presenceIntervalMs,
            },
            aliveIntervalMs: this.options.presenceIntervalMs,
            client: () => (this.link.ready ? this.link.requireClient() : undefined),
            produce: (record) =>
              this.link.stopped
                ? Promise.reject(new StompError('STOMP_ERR_SHUTDOWN'))
                : this.queue.offer(record),
            log: this.lines,
            warnOnce: (key, message) => this.notices.warnOnce(key, message),
            joinTimeoutMs: this.options.startTimeoutMs,
          })
        : undefined;
    this.stats = {
      instanceId: this.instanceId,
      recordsConsumed: () => this.fetched.byTopicTotals(),
      lag: () => this.offsets.lag(),
      instances: () => this.presence.instances(),
      queues: () =>
        this.queues && {
          ownedPartitions: this.queues.ownedPartitions(),
          ...this.queues.counters,
        },
      onProduced: (listener) => {
        this.produceListeners.push(listener);
      },
      produceWait: () => this.queue.waits,
      recordDelay: () => this.delays,
    };
  }

  /** This instance's consumer lag, all partitions together. */
  private totalLag(): number {
    let lag = 0;
    for (const p of this.offsets.lag()) lag += p.lag;
    return lag;
  }

  /**
   * With `--kafka-interest subscribed`: the partitions of the topics topic
   * fetched now; undefined with `all` (every partition is).
   */
  interestPartitions(): number[] | undefined {
    return this.interest?.readPartitions();
  }

  /**
   * With `--kafka-interest subscribed`: the partitions of the users topic
   * fetched now (those of the users with a session here, and lingering ones);
   * undefined with `all`.
   */
  userPartitions(): number[] | undefined {
    return this.userInterest?.readPartitions();
  }

  /** True once the producer is connected (SENDs wait for Kafka until then). */
  get ready(): boolean {
    return this.link.ready;
  }

  /**
   * Ready for clients: the producer connected, the consumer running and the
   * history read back at start-up (or given up waiting for after `startTimeoutMs`).
   */
  readiness(): FanoutReadiness {
    const reason = this.link.notReady;
    return reason === undefined ? { ready: true } : { ready: false, reason };
  }

  /** The same as {@link ready}. */
  get connected(): boolean {
    return this.link.ready;
  }

  /**
   * Connects, creates the topics, reads their recent history back and starts
   * the consumer; when Kafka is unreachable or slow, resolves after
   * the first failed attempt or `startTimeoutMs` and goes on retrying in the
   * background (SENDs wait meanwhile, each for `sendTimeoutMs` at most).
   */
  async start(sink: FanoutSink): Promise<void> {
    this.sink = sink;
    this.queues?.attach(sink);
    await this.link.start();
  }

  /** Flushes what is queued, then leaves the group and disconnects; bounded by `stopTimeoutMs`. */
  async stop(): Promise<void> {
    if (this.link.stopped) return;
    // Leave the registry at once rather than after the entry expires.
    this.presence.stop(this.link.ready);
    this.interest?.stop();
    // Its queue partitions go to another owner at once rather than after the session timeout.
    await this.queues?.stop().catch(() => {});
    this.userInterest?.stop();
    this.readYourWrites.stop();
    this.link.halt();
    const deadline = Date.now() + this.options.stopTimeoutMs;
    await this.queue.stop(this.options.stopTimeoutMs / 2);
    await this.link.close(deadline);
  }

  /**
   * Queues the message for Kafka, connected or not; resolves when Kafka
   * acknowledged it (acks from all in-sync replicas), rejects when too much
   * already waits (`maxPendingRecords`, `maxPendingBytes`), when Kafka
   * refuses it, or when Kafka did not take it within `sendTimeoutMs`.
   */
  private publish(message: Outgoing): Promise<void> {
    let result: Promise<void>;
    if (this.link.stopped) {
      result = Promise.reject(new StompError('STOMP_ERR_SHUTDOWN'));
    } else {
      result = this.queue.offer(this.records.toRecord(message));
    }
    // Not every caller attaches its handler at once (COMMIT collects the promises of
    // its SENDs first); an early rejection must not count as unhandled meanwhile (it
    // would end the process).
    result.catch(() => {});
    return result;
  }

  /**
   * Records, on the users topic, that a user-queue message was consumed
   * here; resolves once Kafka acknowledged the record (the ACK's RECEIPT
   * waits for it), rejects when it could not be recorded within
   * `sendTimeoutMs` (other instances may then deliver the message again).
   */
  private consumed(message: Outgoing): Promise<void> {
    const recorded = this.link.stopped
      ? Promise.reject(new StompError('STOMP_ERR_SHUTDOWN'))
      : this.queue.push(this.records.consumedRecord(message)).catch((error: unknown) => {
          // Kafka down: the produce queue already logs; one line per message would flood.
          this.notices.warnOnce(
            `consumed:${describe(error)}`,
            `could not record consumption (${describe(error)}); those messages may come again`,
          );
          if (error instanceof StompError && error.code === 'STOMP_ERR_SHUTDOWN') throw error;
          throw unavailable(
            `consumption of ${message.id} not recorded (${describe(error)})`,
            error,
          );
        });
    // Nobody may wait for it (a subscription that ended): not an unhandled rejection.
    recorded.catch(() => {});
    return recorded;
  }

  /**
   * Interest in the partitions of `topic`: the topics topic by destination,
   * the users topic by user, where every pick-up reads the mailboxes back.
   */
  private createInterest(topic: string): PartitionInterest {
    const { historyMaxAgeMs, offlineMaxAgeMs } = this.options;
    const users = topic === this.topics.usersTopic;
    const usersAge = Math.max(historyMaxAgeMs, offlineMaxAgeMs);
    return new PartitionInterest({
      topic,
      lingerMs: this.options.interestLingerMs,
      historyMaxAgeMs: users ? usersAge : historyMaxAgeMs,
      ...(users ? { pickUpHistoryMs: usersAge } : {}),
      readBackTimeoutMs: this.options.startTimeoutMs,
      client: () => (this.link.ready ? this.link.requireClient() : undefined),
      consumer: () => {
        const consumer = this.link.activeConsumer;
        const { pause, resume, seek, nextFetch } = consumer ?? {};
        if (!consumer || !pause || !resume || !seek) return undefined;
        return {
          pause: (topic, partitions) => pause.call(consumer, topic, partitions),
          resume: (topic, partitions) => resume.call(consumer, topic, partitions),
          seek: (topic, partition, offset) => seek.call(consumer, topic, partition, offset),
          nextFetch: nextFetch && ((timeoutMs) => nextFetch.call(consumer, timeoutMs)),
        };
      },
      offsets: this.offsets,
      log: this.lines,
    });
  }

  /** Whether a destination travels on the topics topic, whose partitions interest governs. */
  private governed(destination: string): boolean {
    // Queues never travel through Kafka; user destinations go on the users topic.
    if (destinationKind(destination) !== 'topic') return false;
    return this.records.topicFor(destination) === this.topics.topic;
  }

  /**
   * What a SUBSCRIBE waits for: for a user queue, the consumption recorded
   * before it (read-your-writes); with interest, the pick-up of the
   * destination's partition (reading back what a resume needs); a user
   * destination's partition is its user's (its mailbox read back).
   */
  private reach(
    interest: PartitionInterest | undefined,
    users: PartitionInterest | undefined,
    destination: string,
    resumeAfter: Position | undefined,
  ): Promise<void> | undefined {
    const userQueue = destinationKind(destination) === 'user-queue';
    const picked = interest && users && this.pickUp(interest, users, destination, resumeAfter);
    if (!userQueue) return picked;
    // Read-your-writes asks for the end once the partition is read here (picked up first:
    // until then this instance has no position in it to compare with).
    if (!picked) return this.readYourWrites.reach(destination);
    return picked.then(() => this.readYourWrites.reach(destination));
  }

  /** Interest: picks up the destination's partition; undefined when it is read already. */
  private pickUp(
    interest: PartitionInterest,
    users: PartitionInterest,
    destination: string,
    resumeAfter: Position | undefined,
  ): Promise<void> | undefined {
    const kind = destinationKind(destination);
    const user = kind === 'user-queue' || kind === 'user-topic';
    if (!user && !this.governed(destination)) return undefined;
    const by = user ? users : interest;
    const key = user ? userKey(destination) : destination;
    const partition = by.partitionOf(key);
    // A position of another partition (or none of ours) cannot be read back.
    const after =
      resumeAfter && partitionOf(resumeAfter.epoch) === partition ? resumeAfter.n : undefined;
    return by.reach(key, after);
  }

  private coveredFrom(destination: string, epoch: string): number | undefined {
    const topic = this.records.topicFor(destination);
    const partition = partitionOf(epoch);
    const interest = this.interest?.governs(topic) ? this.interest : this.userInterest;
    if (interest?.governs(topic) && partition !== undefined) {
      // A partition not fetched now: nothing vouched for.
      if (!interest.isReading(partition)) return undefined;
    }
    return this.offsets.coveredFrom(topic, epoch, this.records.isBridged(destination));
  }

  /**
   * Every fetched record, once: registry announcements, consumption records
   * and messages; a message written twice (a retried produce) only the first time.
   */
  private onRecords(records: ConsumedRecord[]): void {
    // One batch is one partition of one topic.
    const first = records[0];
    if (first !== undefined) {
      this.fetched.add(first.topic, first.partition, records.length);
      this.batchDelays = this.delays.get(first.topic);
      this.batchAt = Date.now();
    }
    this.offsets.batchStart();
    for (const record of records) {
      try {
        this.onRecord(record);
      } catch (error) {
        // One record that cannot be read must not stop its partition: kafkajs would fetch
        // the batch again and again. It is skipped (its offset is passed) and said once.
        const { topic } = record;
        this.notices.warnOnce(
          `unreadable:${topic}`,
          `skipping a record of ${topic} (partition ${record.partition}, offset ${record.offset}) that could not be read: ${describe(error)}`,
        );
      }
    }
    // Mailboxes now hold what this batch said: SUBSCRIBEs waiting for it go on.
    if (first?.topic === this.topics.usersTopic) this.readYourWrites.advanced(first.partition);
  }

  /**
   * The delays of the batch's topic (a series of its own from its first live message on).
   * `topic` names the series when the batch's first message makes it: a batch holds one
   * partition of one topic, so every record of it shares the series.
   */
  private delayOf(topic: string): DelayCounter {
    if (this.batchDelays) return this.batchDelays;
    const delays = new DelayCounter();
    this.delays.set(topic, delays);
    this.batchDelays = delays;
    return delays;
  }

  /** One fetched record: a registry announcement, a consumption record or a message. */
  private onRecord(record: ConsumedRecord): void {
    if (this.interest && !this.interest.accepts(record)) return;
    if (this.userInterest && !this.userInterest.accepts(record)) return;
    const fetched = this.offsets.advance(record);
    // A gap: fetched again from its start, where this record comes again.
    if (fetched === 'seen' || fetched === 'gap') return;
    if (record.topic === this.topics.presenceTopic) {
      this.presence.onRecord(record);
      return;
    }
    if (record.topic === this.topics.queuesTopic) {
      this.queues?.onRecord(record);
      return;
    }
    const consumed = record.topic === this.topics.usersTopic && consumedId(record);
    if (consumed) {
      if (record.key) this.sink.consumed(record.key.toString(), consumed);
      return;
    }
    const message = this.records.toMessage(record, fetched === 'history');
    if (!message) {
      const { topic } = record;
      this.notices.warnOnce(topic, `skipping records on ${topic} without a destination key`);
      return;
    }
    // Only messages carry our ids (a record without one gets its position, never repeated).
    if (this.duplicates.repeated(record.topic, record.partition, message.id)) return;
    if (fetched === 'live' && record.timestamp > 0) {
      this.delayOf(record.topic).add(this.batchAt - record.timestamp);
    }
    try {
      this.sink.deliver(message);
    } catch (error) {
      this.lines('error', `delivering ${message.id} failed (${describe(error)})`, {
        err: error,
      });
    }
  }
}
