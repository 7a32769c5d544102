import { describe, expect, it } from 'vitest';
import { clusterTopics, topicPlan } from '../../src/cluster/topics.js';

const HOUR = 60 * 60_000;

describe('clusterTopics', () => {
  it('names the users and presence topics after the topic', () => {
    expect(clusterTopics('t', { prices: '/topic/prices' })).toEqual({
      topic: 't',
      usersTopic: 't.users',
      presenceTopic: 't.presence',
      queuesTopic: 't.queues',
      bridges: { prices: '/topic/prices' },
    });
  });

  it('refuses a bridge to anything but a /topic/ destination', () => {
    for (const destination of ['/queue/a', '/user/bob/topic/a', '/topic/', 'prices']) {
      expect(() => clusterTopics('t', { prices: destination })).toThrow(
        `stompbus: --bridge prices=${destination}: not a /topic/ destination`,
      );
    }
  });

  it('refuses a bridge of a topic of the cluster, or to a destination bridged already', () => {
    for (const taken of ['t', 't.users', 't.presence']) {
      expect(() => clusterTopics('t', { [taken]: '/topic/x' })).toThrow(
        `stompbus: --bridge ${taken}=/topic/x is bridged twice`,
      );
    }
    expect(() => clusterTopics('t', { a: '/topic/x', b: '/topic/x' })).toThrow(
      'stompbus: --bridge b=/topic/x is bridged twice',
    );
  });
});

describe('topicPlan', () => {
  it('creates and consumes the topics in one order, each read back as far as it is needed', () => {
    const topics = clusterTopics('t', { prices: '/topic/prices' });
    const plan = topicPlan(topics, {
      partitions: 3,
      historyMaxAgeMs: HOUR,
      offlineMaxAgeMs: 2 * HOUR,
    });
    expect(plan.create).toEqual([
      { topic: 't', partitions: 3 },
      { topic: 't.users', partitions: 3, config: { 'retention.ms': String(7 * 24 * HOUR) } },
      { topic: 't.presence', partitions: 1, config: { 'retention.ms': String(24 * HOUR) } },
      { topic: 'prices', partitions: 1 },
    ]);
    expect(plan.readFrom).toEqual([
      { topic: 't', historyMs: HOUR },
      { topic: 't.users', historyMs: 2 * HOUR },
      { topic: 't.presence', historyMs: undefined },
      { topic: 'prices', historyMs: HOUR },
    ]);
  });

  it('keeps user traffic in Kafka at least as long as offline messages are kept', () => {
    const plan = topicPlan(clusterTopics('t', {}), {
      partitions: 1,
      historyMaxAgeMs: HOUR,
      offlineMaxAgeMs: 30 * 24 * HOUR,
    });
    expect(plan.create[1]?.config?.['retention.ms']).toBe(String(30 * 24 * HOUR));
  });
});
