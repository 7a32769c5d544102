/**
 * The Kafka topics of one cluster, all named after `--kafka-topic`: what each
 * carries, what it is created with and how far back an instance reads it at
 * start-up. Bridged topics are checked here too, since a bridge must not
 * take a topic or a destination that something else already uses.
 */
import { destinationKind } from '../broker/destination.js';
import type { TopicSpec } from './kafka-client.js';
import type { KafkaFanoutOptions } from './kafka-options.js';
import type { ReadFrom } from './offsets.js';

/** The Kafka topics of one cluster. */
export interface ClusterTopics {
  /** All `/topic/…` traffic that is not bridged. */
  readonly topic: string;
  /** User destinations and their consumption records (`<topic>.users`). */
  readonly usersTopic: string;
  /** The connection registry (`<topic>.presence`). */
  readonly presenceTopic: string;
  /** Cluster-wide queues: their messages, consumers and acks (`<topic>.queues`). */
  readonly queuesTopic: string;
  /** Bridged Kafka topic → destination. */
  readonly bridges: Readonly<Record<string, string>>;
}

const DAY_MS = 24 * 60 * 60_000;

/**
 * The topics of a cluster on `topic`; throws when a bridge names no
 * `/topic/` destination, or a topic or destination already taken.
 */
export function clusterTopics(
  topic: string,
  bridges: Readonly<Record<string, string>>,
): ClusterTopics {
  const topics = {
    topic,
    usersTopic: `${topic}.users`,
    presenceTopic: `${topic}.presence`,
    queuesTopic: `${topic}.queues`,
    bridges,
  };
  const taken = [topic, topics.usersTopic, topics.presenceTopic, topics.queuesTopic];
  const bridged = new Set<string>();
  for (const [kafkaTopic, destination] of Object.entries(bridges)) {
    if (destinationKind(destination) !== 'topic') {
      throw new Error(`stompbus: --bridge ${kafkaTopic}=${destination}: not a /topic/ destination`);
    }
    if (taken.includes(kafkaTopic) || bridged.has(destination)) {
      throw new Error(`stompbus: --bridge ${kafkaTopic}=${destination} is bridged twice`);
    }
    bridged.add(destination);
  }
  return topics;
}

/** How the topics are created and read back; every one of them is consumed. */
export interface TopicPlan {
  /** What each topic is created with, in the order they are consumed. */
  readonly create: readonly TopicSpec[];
  /** How far back each is read at start-up. */
  readonly readFrom: readonly ReadFrom[];
}

/** How a cluster's topics are created and read back with these settings. */
export function topicPlan(
  topics: ClusterTopics,
  options: Pick<KafkaFanoutOptions, 'partitions' | 'historyMaxAgeMs' | 'offlineMaxAgeMs'> &
    Partial<Pick<KafkaFanoutOptions, 'queues' | 'queueMaxAgeMs'>>,
): TopicPlan {
  const { partitions, historyMaxAgeMs, offlineMaxAgeMs } = options;
  // A waiting message's record must outlive the message: an owner rebuilds from it.
  const queues: TopicSpec[] =
    options.queues === 'cluster'
      ? [
          {
            topic: topics.queuesTopic,
            partitions,
            config: {
              'retention.ms': String(Math.max(7 * DAY_MS, 2 * (options.queueMaxAgeMs ?? 0))),
            },
          },
        ]
      : [];
  const usersAge = Math.max(historyMaxAgeMs, offlineMaxAgeMs);
  const create: TopicSpec[] = [
    { topic: topics.topic, partitions },
    // Kafka must keep user traffic at least as long as offline messages are kept.
    {
      topic: topics.usersTopic,
      partitions,
      config: { 'retention.ms': String(Math.max(7 * DAY_MS, usersAge)) },
    },
    { topic: topics.presenceTopic, partitions: 1, config: { 'retention.ms': String(DAY_MS) } },
    ...queues,
    ...Object.keys(topics.bridges).map((t) => ({ topic: t, partitions: 1 })),
  ];
  // The recent history of each topic (kept for resumes and offline users, not
  // delivered); the registry only from now on: old announcements are stale.
  const historyOf = (topic: string) => {
    // The registry and the queues' assignments: from now on (old ones are stale or done).
    if (topic === topics.presenceTopic || topic === topics.queuesTopic) return undefined;
    return topic === topics.usersTopic ? usersAge : historyMaxAgeMs;
  };
  const readFrom = create.map(({ topic }) => ({ topic, historyMs: historyOf(topic) }));
  return { create, readFrom };
}
