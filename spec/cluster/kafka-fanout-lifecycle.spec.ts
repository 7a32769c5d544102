import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, outcome, outgoing, sleep, text, until } from './harness.js';

const HOUR = 60 * 60_000;

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.stopAll();
});

describe('KafkaFanout: connecting', () => {
  it('keeps publishes waiting while Kafka is unreachable at start-up, and sends them once it connects in the background', async () => {
    h.kafka.fail();
    const a = await h.start();
    expect(a.fanout.ready).toBe(false);
    expect(a.fanout.connected).toBe(false);
    expect(h.lines.some((l) => l.includes('not connected yet (Kafka unreachable)'))).toBe(true);
    const waiting = outcome(a.fanout.bus.publish(outgoing('/topic/x', 'early')));
    await sleep(100);
    h.kafka.recover();
    await until(() => a.fanout.ready);
    expect(a.fanout.connected).toBe(true);
    expect(await waiting).toBe('ok');
    await a.fanout.bus.publish(outgoing('/topic/x', 'after'));
    await until(() => a.sink.delivered.length === 2);
    expect(a.sink.delivered.map(text)).toEqual(['early', 'after']);
    expect(h.lines.some((l) => l.startsWith('info: connected to memory:9092'))).toBe(true);
    // Each line names the state it reports, for a log shipper to count.
    const states = h.log.lines.filter((l) => l.component === 'kafka').map((l) => l.kafka);
    expect(states[0]).toBe('unreachable');
    expect(states).toContain('connected');
    expect(states.indexOf('connected')).toBeGreaterThan(states.lastIndexOf('unreachable'));
    expect(h.log.lines.find((l) => l.kafka === 'connected')).toMatchObject({
      brokers: 'memory:9092',
      durationMs: expect.any(Number),
    });
  });

  it('fails a publish with STOMP_ERR_CLUSTER_UNAVAILABLE when Kafka stays unreachable past sendTimeoutMs', async () => {
    h.kafka.fail();
    const a = await h.start({ sendTimeoutMs: 200 });
    const refused = a.fanout.bus.publish(outgoing('/topic/x'));
    await expect(refused).rejects.toMatchObject({ code: 'STOMP_ERR_CLUSTER_UNAVAILABLE' });
    await expect(refused).rejects.toThrow(/Kafka did not take the message within 200 ms/);
  });

  it('restarts a crashed consumer in a fresh group, neither skipping nor repeating records', async () => {
    const a = await h.start();
    const b = await h.start();
    for (let i = 0; i < 5; i++) await a.fanout.bus.publish(outgoing('/topic/x', `m${i}`));
    await until(() => b.sink.delivered.length === 5);
    h.kafka.crashConsumers(b.fanout.instanceId);
    for (let i = 5; i < 10; i++) await a.fanout.bus.publish(outgoing('/topic/x', `m${i}`));
    await until(() => b.sink.delivered.length >= 10);
    await sleep(30);
    expect(b.sink.delivered.map(text)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    expect(h.kafka.groups).toContain(`${b.fanout.instanceId}-2`);
    expect(h.lines).toContain('error: consumer stopped (memory consumer crashed); restarting it');
    expect(h.lines).toContain('info: consumer restarted');
    expect(h.log.lines.find((l) => l.kafka === 'crashed')).toMatchObject({
      level: 'error',
      component: 'kafka',
      error: 'memory consumer crashed',
    });
    expect(h.log.lines.find((l) => l.kafka === 'restarted')?.level).toBe('info');
  });

  it('ends the backoff of a consumer restart early once a produce succeeds again', async () => {
    const a = await h.start({ retryInitialMs: 10_000, retryMaxMs: 10_000 });
    h.kafka.fail();
    h.kafka.crashConsumers(a.fanout.instanceId);
    const waiting = outcome(a.fanout.bus.publish(outgoing('/topic/x')));
    await until(() => h.lines.some((l) => l.startsWith('error: produce failed')));
    h.kafka.recover();
    const recovered = Date.now();
    expect(await waiting).toBe('ok');
    await until(() => h.lines.includes('info: consumer restarted'), 2_000);
    expect(Date.now() - recovered).toBeLessThan(2_000);
  });
});

describe('KafkaFanout: history and resumes', () => {
  it('delivers the history written before start flagged replayed, and only as far back as historyMaxAgeMs', async () => {
    const a = await h.start();
    h.kafka.append(h.topic, {
      key: '/topic/h',
      value: 'too old',
      timestamp: Date.now() - 2 * HOUR,
    });
    for (let i = 0; i < 3; i++) await a.fanout.bus.publish(outgoing('/topic/h', `old ${i}`));
    const b = await h.start({ historyMaxAgeMs: HOUR });
    // start() waits until the history is read back.
    expect(b.sink.on('/topic/h').map(text)).toEqual(['old 0', 'old 1', 'old 2']);
    expect(b.sink.delivered.every((m) => m.replayed)).toBe(true);
    await a.fanout.bus.publish(outgoing('/topic/h', 'live'));
    await until(() => b.sink.delivered.length === 4);
    expect(b.sink.delivered.map((m) => [text(m), m.replayed])).toEqual([
      ['old 0', true],
      ['old 1', true],
      ['old 2', true],
      ['live', false],
    ]);
  });

  it('times only live messages from their record timestamp (stats.recordDelay), not what it read back', async () => {
    const a = await h.start();
    for (let i = 0; i < 3; i++) await a.fanout.bus.publish(outgoing('/topic/h', `old ${i}`));
    const b = await h.start({ historyMaxAgeMs: HOUR });
    expect(b.sink.delivered).toHaveLength(3);
    // The history read back at start is not on its way now: no series yet.
    expect(b.fanout.stats?.recordDelay?.().get(h.topic)).toBeUndefined();
    // A live record stamped 300 ms ago (a producer's clock, say) is 300 ms old when handed over.
    h.kafka.append(h.topic, { key: '/topic/h', value: 'late', timestamp: Date.now() - 300 });
    await a.fanout.bus.publish(outgoing('/topic/h', 'live'));
    await until(() => b.sink.delivered.length === 5);
    const delays = b.fanout.stats?.recordDelay?.().get(h.topic);
    expect(delays?.count).toBe(2);
    expect(delays?.sum).toBeGreaterThanOrEqual(0.3);
    expect(delays?.sum).toBeLessThan(1);
    // Registry announcements (the presence topic) are not messages: no series of theirs.
    expect([...(b.fanout.stats?.recordDelay?.().keys() ?? [])]).toEqual([h.topic]);
  });

  it('vouches for a resume only from where it started reading', async () => {
    const a = await h.start();
    const partition = h.kafka.partitionFor(h.topic, '/topic/h');
    h.kafka.append(h.topic, { key: '/topic/h', timestamp: Date.now() - 2 * HOUR });
    await a.fanout.bus.publish(outgoing('/topic/h'));
    const b = await h.start({ historyMaxAgeMs: HOUR });
    expect(b.fanout.log.coveredFrom('/topic/h', `p${partition}`)).toBe(1);
    // a read everything from where the partition was at its start.
    expect(a.fanout.log.coveredFrom('/topic/h', `p${partition}`)).toBe(0);
    expect(b.fanout.log.coveredFrom('/topic/h', 'p99')).toBeUndefined();
    expect(b.fanout.log.coveredFrom('/topic/h', 'a1b2c3d4')).toBeUndefined();
  });

  it('vouches for no resume while the history is still being read back', async () => {
    const a = await h.start();
    await a.fanout.bus.publish(outgoing('/topic/h'));
    const partition = `p${h.kafka.partitionFor(h.topic, '/topic/h')}`;
    h.kafka.pauseDelivery();
    const b = await h.start({ startTimeoutMs: 100 });
    expect(b.fanout.ready).toBe(true);
    expect(b.fanout.log.coveredFrom('/topic/h', partition)).toBeUndefined();
    await until(() =>
      h.lines.includes('warn: history not read back in time; resumes may be incomplete'),
    );
    h.kafka.pauseDelivery(false);
    await until(() => b.sink.delivered.length === 1);
    expect(b.fanout.log.coveredFrom('/topic/h', partition)).toBe(0);
  });
});

describe('KafkaFanout: registry', () => {
  it('knows on which instances a user has sessions', async () => {
    const a = await h.start({ presenceIntervalMs: 100 });
    const b = await h.start({ presenceIntervalMs: 100 });
    expect(a.fanout.registry.instanceId).toBe(a.fanout.instanceId);
    a.sink.users.add('alice');
    a.fanout.registry.usersChanged();
    expect(a.fanout.registry.whereIs('alice')).toEqual([a.fanout.instanceId]);
    await until(() => b.fanout.registry.whereIs('alice').length === 1);
    expect(b.fanout.registry.whereIs('alice')).toEqual([a.fanout.instanceId]);
    b.sink.users.add('alice');
    b.fanout.registry.usersChanged();
    await until(() => a.fanout.registry.whereIs('alice').length === 2);
    expect(a.fanout.registry.whereIs('alice').sort()).toEqual(
      [a.fanout.instanceId, b.fanout.instanceId].sort(),
    );
    expect(a.fanout.registry.whereIs('bob')).toEqual([]);
  });
});

describe('KafkaFanout: stopping', () => {
  it('rejects the publishes still queued at stop() with STOMP_ERR_SHUTDOWN, and those after it', async () => {
    const a = await h.start({ maxBatchRecords: 1, stopTimeoutMs: 200 });
    const release = h.kafka.holdProduce();
    const inFlight = outcome(a.fanout.bus.publish(outgoing('/topic/x', 'in flight')));
    await until(() => h.requestsTo().length === 1);
    const queued = [1, 2].map(() => outcome(a.fanout.bus.publish(outgoing('/topic/x'))));
    await a.fanout.stop();
    expect(await Promise.all(queued)).toEqual(['STOMP_ERR_SHUTDOWN', 'STOMP_ERR_SHUTDOWN']);
    expect(await outcome(a.fanout.bus.publish(outgoing('/topic/x')))).toBe('STOMP_ERR_SHUTDOWN');
    expect(a.fanout.ready).toBe(false);
    expect(h.kafka.closed).toBe(1);
    release();
    expect(await inFlight).toBe('ok');
  });

  it('flushes the request in flight and what queued behind it when Kafka answers in time', async () => {
    const a = await h.start({ maxBatchRecords: 1, stopTimeoutMs: 2_000 });
    const release = h.kafka.holdProduce();
    const sent = ['m0', 'm1'].map((body) =>
      outcome(a.fanout.bus.publish(outgoing('/topic/x', body))),
    );
    await until(() => h.requestsTo().length === 1);
    const stopped = a.fanout.stop();
    release();
    await stopped;
    expect(await Promise.all(sent)).toEqual(['ok', 'ok']);
  });

  it('reads nothing more once stopped', async () => {
    const a = await h.start();
    await a.fanout.stop();
    h.kafka.append(h.topic, { key: '/topic/x', value: 'late' });
    await sleep(30);
    expect(a.sink.delivered).toEqual([]);
  });
});

describe('KafkaFanout: readiness (what /readyz reports)', () => {
  it('is not ready while Kafka is unreachable, while a crashed consumer is replaced, nor once stopped', async () => {
    h.kafka.fail();
    const a = await h.start({ retryInitialMs: 20, retryMaxMs: 50 });
    expect(a.fanout.readiness()).toEqual({ ready: false, reason: 'connecting to Kafka' });
    h.kafka.recover();
    await until(() => a.fanout.readiness().ready);
    expect(a.fanout.readiness()).toEqual({ ready: true });

    h.kafka.fail();
    h.kafka.crashConsumers(a.fanout.instanceId);
    expect(a.fanout.readiness()).toEqual({ ready: false, reason: 'Kafka consumer restarting' });
    h.kafka.recover();
    await until(() => h.lines.includes('info: consumer restarted'));
    expect(a.fanout.readiness()).toEqual({ ready: true });

    await a.fanout.stop();
    expect(a.fanout.readiness()).toEqual({ ready: false, reason: 'stopping' });
  });
});
