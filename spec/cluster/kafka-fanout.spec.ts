import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMessage } from '../../src/broker/message.js';
import { recordSize } from '../../src/cluster/records.js';
import { CONSUMED_HEADER, KafkaFanout, MESSAGE_ID_HEADER } from '../../src/kafka.js';
import { Harness, outcome, outgoing, sleep, text, until } from './harness.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.stopAll();
});

describe('KafkaFanout: messages between instances', () => {
  it('delivers every message to every instance in one order per destination, positioned at its partition and offset', async () => {
    const a = await h.start();
    const b = await h.start();
    const destinations = ['/topic/d0', '/topic/d1', '/topic/d2'];
    const sent = Array.from({ length: 30 }, (_, i) => {
      const from = i % 2 === 0 ? a : b;
      return from.fanout.bus.publish(outgoing(destinations[i % 3] as string, `m${i}`));
    });
    await Promise.all(sent);
    await until(() => a.sink.delivered.length === 30 && b.sink.delivered.length === 30);
    for (const destination of destinations) {
      const here = a.sink.on(destination);
      expect(here.map((m) => m.id)).toEqual(b.sink.on(destination).map((m) => m.id));
      expect(here).toHaveLength(10);
      expect(here.map((m) => m.position)).toEqual(b.sink.on(destination).map((m) => m.position));
      // One partition per destination (its epoch), offsets growing within it.
      const epoch = `p${h.kafka.partitionFor(h.topic, destination)}`;
      const ns = here.map((m) => (m.position?.epoch === epoch ? m.position.n : -1));
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
      expect(new Set(ns).size).toBe(10);
      expect(ns[0]).toBeGreaterThanOrEqual(0);
      for (const m of here) {
        expect(m.replayed).toBe(false);
        expect(m.at).toBeTypeOf('number');
      }
    }
  });

  it('carries the id, headers and body of a message to the other instances', async () => {
    const a = await h.start();
    const b = await h.start();
    const message = outgoing('/topic/x', 'héllo', [
      ['content-type', 'text/plain'],
      ['x-twice', '1'],
      ['x-twice', '2'],
    ]);
    await a.fanout.bus.publish(message);
    await until(() => b.sink.delivered.length === 1);
    const [got] = b.sink.delivered;
    expect(got?.id).toBe(message.id);
    expect(got?.destination).toBe('/topic/x');
    expect(got?.headers).toEqual(message.headers);
    expect(got && text(got)).toBe('héllo');
  });

  it('sends user destinations on the users topic of the cluster', async () => {
    const a = await h.start();
    const b = await h.start();
    await a.fanout.bus.publish(outgoing('/user/bob/queue/inbox', 'for bob'));
    await until(() => b.sink.delivered.length === 1);
    expect(h.kafka.records(`${h.topic}.users`)).toHaveLength(1);
    expect(h.kafka.records(h.topic)).toHaveLength(0);
    expect(b.sink.delivered[0]?.destination).toBe('/user/bob/queue/inbox');
  });

  it("places all of a user's records (queues, topics, consumption) by the user, so they share one partition", async () => {
    const a = await h.start();
    const destinations = ['/user/bob/queue/inbox', '/user/bob/queue/other', '/user/bob/topic/news'];
    for (const d of destinations) await a.fanout.bus.publish(outgoing(d));
    a.fanout.log.consumed(createMessage(outgoing('/user/bob/queue/x'), { epoch: 'p0', n: 0 }, 0));
    await until(() => h.kafka.records(`${h.topic}.users`).length === 4);
    const records = h.requestsTo(`${h.topic}.users`).flat();
    expect(records.map((r) => r.partitionKey)).toEqual(Array(4).fill('/user/bob'));
    // Keyed by destination as before: the key still names it.
    expect(records.map((r) => r.key)).toEqual([...destinations, '/user/bob/queue/x']);
    expect(new Set(h.kafka.records(`${h.topic}.users`).map((r) => r.partition)).size).toBe(1);
    // Topic destinations are placed by their key alone.
    await a.fanout.bus.publish(outgoing('/topic/x'));
    expect(h.requestsTo().flat()[0]?.partitionKey).toBeUndefined();
  });

  it('resolves a publish only once Kafka has acknowledged the record', async () => {
    const a = await h.start();
    const release = h.kafka.holdProduce();
    let acknowledged = false;
    const sent = outcome(a.fanout.bus.publish(outgoing('/topic/x'))).then((result) => {
      acknowledged = true;
      return result;
    });
    await until(() => h.requestsTo().length === 1);
    await sleep(20);
    expect(acknowledged).toBe(false);
    expect(h.kafka.records(h.topic)).toHaveLength(0);
    release();
    expect(await sent).toBe('ok');
    expect(h.kafka.records(h.topic)).toHaveLength(1);
  });

  it('tells every instance when a user-queue message was consumed', async () => {
    const a = await h.start();
    const b = await h.start();
    const message = createMessage(outgoing('/user/bob/queue/inbox'), { epoch: 'p0', n: 0 }, 0);
    a.fanout.log.consumed(message);
    await until(() => b.sink.consumedIds.length === 1 && a.sink.consumedIds.length === 1);
    expect(b.sink.consumedIds).toEqual([['/user/bob/queue/inbox', message.id]]);
    const [record] = h.kafka.records(`${h.topic}.users`);
    expect(record?.headers.map(([n, v]) => [n, v.toString()])).toEqual([
      [CONSUMED_HEADER, message.id],
    ]);
    // A consumption record is no message.
    expect(b.sink.delivered).toEqual([]);
  });

  it('delivers a record fetched again (after a rejoin without its seek) only once', async () => {
    const a = await h.start();
    for (let i = 0; i < 3; i++) await a.fanout.bus.publish(outgoing('/topic/x', `m${i}`));
    await until(() => a.sink.delivered.length === 3);
    h.kafka.refetch();
    await a.fanout.bus.publish(outgoing('/topic/x', 'm3'));
    await until(() => a.sink.delivered.length >= 4);
    await sleep(30);
    expect(a.sink.delivered.map(text)).toEqual(['m0', 'm1', 'm2', 'm3']);
  });

  it('skips records without a destination key, warning once per topic', async () => {
    const a = await h.start();
    h.kafka.append(h.topic, { value: 'no key' });
    h.kafka.append(h.topic, { value: 'no key either' });
    h.kafka.append(h.topic, { key: '/queue/not-here', value: 'a queue' });
    h.kafka.append(h.topic, { key: '/topic/x', value: 'fine' });
    await until(() => a.sink.delivered.length === 1);
    expect(a.sink.delivered.map(text)).toEqual(['fine']);
    const warnings = h.lines.filter((l) => l.includes('without a destination key'));
    expect(warnings).toEqual([`warn: skipping records on ${h.topic} without a destination key`]);
  });

  it('skips a record it cannot read, warning once, and goes on with the next in its partition', async () => {
    const a = await h.start();
    const bad = h.kafka.append(h.topic, { key: '/topic/x', value: 'unreadable' });
    // A header without bytes where bytes must be (what a client could hand over): reading
    // the record throws. It must not stop the partition (kafkajs would fetch it again forever).
    (bad.headers as unknown as Array<[string, unknown]>).push(['x-broken', null]);
    h.kafka.append(h.topic, { key: '/topic/x', value: 'after it' });
    await until(() => a.sink.delivered.length === 1);
    await sleep(30);
    expect(a.sink.delivered.map(text)).toEqual(['after it']);
    const warnings = h.lines.filter((l) => l.includes('could not be read'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^warn: skipping a record of ${h.topic} \\(partition \\d+, offset 0\\) that could not be read: `,
      ),
    );
  });

  it('logs a delivery that throws and goes on with the next', async () => {
    const a = await h.start();
    const deliver = a.sink.deliver.bind(a.sink);
    let calls = 0;
    a.sink.deliver = (message) => {
      if (calls++ === 0) throw new Error('subscriber bug');
      deliver(message);
    };
    const first = outgoing('/topic/x', 'first');
    await a.fanout.bus.publish(first);
    await a.fanout.bus.publish(outgoing('/topic/x', 'second'));
    await until(() => a.sink.delivered.length === 1);
    expect(a.sink.delivered.map(text)).toEqual(['second']);
    expect(h.lines).toContain(`error: delivering ${first.id} failed (subscriber bug)`);
  });
});

describe('KafkaFanout: produce requests', () => {
  it('sends one produce request at a time, each of at most maxBatchRecords records', async () => {
    const a = await h.start({ maxBatchRecords: 10 });
    const release = h.kafka.holdProduce();
    const first = a.fanout.bus.publish(outgoing('/topic/x', 'first'));
    await until(() => h.requestsTo().length === 1);
    const more = Array.from({ length: 25 }, (_, i) =>
      a.fanout.bus.publish(outgoing('/topic/x', `m${i}`)),
    );
    await sleep(20);
    expect(h.requestsTo()).toHaveLength(1);
    release();
    await Promise.all([first, ...more]);
    expect(h.requestsTo().map((r) => r.length)).toEqual([1, 10, 10, 5]);
    expect(h.kafka.maxInFlight).toBe(1);
    await until(() => a.sink.delivered.length === 26);
    expect(a.sink.delivered.map(text)).toEqual([
      'first',
      ...Array.from({ length: 25 }, (_, i) => `m${i}`),
    ]);
  });

  it('bounds a produce request by maxBatchBytes, sending a larger message alone', async () => {
    const maxBatchBytes = 4_000;
    const a = await h.start({ maxBatchBytes });
    const release = h.kafka.holdProduce();
    const bodies = ['a', 'b', 'c', 'd', 'big', 'e'].map((name) =>
      name === 'big' ? 'B'.repeat(10_000) : name.repeat(1_000),
    );
    const sent = bodies.map((body) => a.fanout.bus.publish(outgoing('/topic/x', body)));
    release();
    await Promise.all(sent);
    const requests = h.requestsTo();
    for (const request of requests) {
      const bytes = request.reduce((sum, r) => sum + recordSize(r), 0);
      if (request.length > 1) expect(bytes).toBeLessThanOrEqual(maxBatchBytes);
    }
    const big = requests.find((r) => r.some((record) => record.value.length === 10_000));
    expect(big).toHaveLength(1);
    expect(requests.flat().map((r) => r.value.toString()[0])).toEqual([
      'a',
      'b',
      'c',
      'd',
      'B',
      'e',
    ]);
    expect(requests.length).toBeGreaterThanOrEqual(4);
  });

  it('rejects a publish with STOMP_ERR_CLUSTER_UNAVAILABLE at once when maxPendingRecords messages wait for Kafka', async () => {
    const a = await h.start({ maxPendingRecords: 3 });
    const release = h.kafka.holdProduce();
    const waiting = [1, 2, 3].map(() => outcome(a.fanout.bus.publish(outgoing('/topic/x'))));
    const refused = a.fanout.bus.publish(outgoing('/topic/x'));
    await expect(refused).rejects.toMatchObject({ code: 'STOMP_ERR_CLUSTER_UNAVAILABLE' });
    await expect(refused).rejects.toThrow(/3 messages already wait for Kafka/);
    release();
    expect(await Promise.all(waiting)).toEqual(['ok', 'ok', 'ok']);
    expect(await outcome(a.fanout.bus.publish(outgoing('/topic/x')))).toBe('ok');
  });

  it('fails a publish that waited for Kafka past sendTimeoutMs, and takes the next once Kafka answers', async () => {
    const a = await h.start({ sendTimeoutMs: 100, maxBatchRecords: 1 });
    const release = h.kafka.holdProduce();
    const inFlight = outcome(a.fanout.bus.publish(outgoing('/topic/x')));
    await until(() => h.requestsTo().length === 1);
    const late = a.fanout.bus.publish(outgoing('/topic/x'));
    await expect(late).rejects.toMatchObject({ code: 'STOMP_ERR_CLUSTER_UNAVAILABLE' });
    await expect(late).rejects.toThrow(/Kafka did not take the message within 100 ms/);
    release();
    expect(await inFlight).toBe('ok');
    expect(await outcome(a.fanout.bus.publish(outgoing('/topic/x')))).toBe('ok');
  });

  it('waits through a Kafka outage shorter than sendTimeoutMs: acknowledged late, delivered once, in order', async () => {
    const a = await h.start({ sendTimeoutMs: 5_000 });
    const b = await h.start();
    await a.fanout.bus.publish(outgoing('/topic/x', 'before'));
    h.kafka.fail(new Error('memory Kafka restarting'));
    const during = ['d0', 'd1', 'd2'].map((body) =>
      outcome(a.fanout.bus.publish(outgoing('/topic/x', body))),
    );
    await sleep(150);
    h.kafka.recover();
    expect(await Promise.all(during)).toEqual(['ok', 'ok', 'ok']);
    await until(() => b.sink.delivered.length === 4);
    await sleep(30);
    expect(b.sink.delivered.map(text)).toEqual(['before', 'd0', 'd1', 'd2']);
    expect(
      h.lines.some((l) => l.startsWith('error: produce failed (memory Kafka restarting)')),
    ).toBe(true);
    expect(h.lines.some((l) => /^info: producing again after \d+ ms/.test(l))).toBe(true);
  });

  it('delivers a message once when a retried produce wrote it twice (the answer was lost)', async () => {
    const a = await h.start();
    const b = await h.start();
    h.kafka.loseAnswers(1);
    const sent = ['m0', 'm1'].map((body) =>
      outcome(a.fanout.bus.publish(outgoing('/topic/x', body))),
    );
    expect(await Promise.all(sent)).toEqual(['ok', 'ok']);
    await a.fanout.bus.publish(outgoing('/topic/x', 'm2'));
    // Kafka holds the first request's records twice…
    expect(h.kafka.records(h.topic).map((r) => r.value?.toString())).toEqual([
      'm0',
      'm1',
      'm0',
      'm1',
      'm2',
    ]);
    // …and every instance delivers them once, in the order Kafka gives.
    for (const instance of [a, b]) {
      await until(() => instance.sink.delivered.some((m) => text(m) === 'm2'));
      expect(instance.sink.delivered.map(text)).toEqual(['m0', 'm1', 'm2']);
    }
  });
});

describe('KafkaFanout: records never read', () => {
  it('fetches a partition again from where its consumer jumped over records: none lost, none vouched away', async () => {
    const a = await h.start();
    const b = await h.start();
    const epoch = `p${h.kafka.partitionFor(h.topic, '/topic/x')}`;
    for (const body of ['m0', 'm1']) await a.fanout.bus.publish(outgoing('/topic/x', body));
    await until(() => a.sink.delivered.length === 2 && b.sink.delivered.length === 2);
    const covered = a.fanout.log.coveredFrom('/topic/x', epoch);
    // The consumers jump over m2 (in Kafka, receipted), as one handed a batch of a later fetch.
    h.kafka.skip(h.topic, h.kafka.partitionFor(h.topic, '/topic/x'));
    for (const body of ['m2', 'm3']) await a.fanout.bus.publish(outgoing('/topic/x', body));
    for (const instance of [a, b]) {
      await until(() => instance.sink.delivered.some((m) => text(m) === 'm3'));
      expect(instance.sink.delivered.map(text)).toEqual(['m0', 'm1', 'm2', 'm3']);
      expect(instance.fanout.log.coveredFrom('/topic/x', epoch)).toBe(covered);
    }
    expect(h.lines.filter((l) => l.includes('were not read'))).toEqual([]);
  });
});

describe('KafkaFanout: headers of our own in a SEND', () => {
  it('delivers two messages whose SENDs both carried a stompbus-message-id header (never taken for a retried copy)', async () => {
    const a = await h.start();
    const b = await h.start();
    // A client (a forwarder, say) may send any header; ours are not its to set.
    const first = outgoing('/topic/x', 'first', [[MESSAGE_ID_HEADER, 'same']]);
    const second = outgoing('/topic/x', 'second', [[MESSAGE_ID_HEADER, 'same']]);
    expect(await outcome(a.fanout.bus.publish(first))).toBe('ok');
    expect(await outcome(a.fanout.bus.publish(second))).toBe('ok');
    await a.fanout.bus.publish(outgoing('/topic/x', 'third'));
    for (const instance of [a, b]) {
      await until(() => instance.sink.delivered.some((m) => text(m) === 'third'));
      expect(instance.sink.delivered.map(text)).toEqual(['first', 'second', 'third']);
      // Each keeps the broker's own id, the one its RECEIPTed SEND got.
      expect(instance.sink.delivered.slice(0, 2).map((m) => m.id)).toEqual([first.id, second.id]);
    }
  });

  it('takes a SEND carrying a stompbus-consumed header for a message, not a consumption record', async () => {
    const a = await h.start();
    const b = await h.start();
    const message = outgoing('/user/bob/queue/inbox', 'for bob', [[CONSUMED_HEADER, 'm-1']]);
    expect(await outcome(a.fanout.bus.publish(message))).toBe('ok');
    await until(() => b.sink.delivered.length === 1);
    expect(b.sink.consumedIds).toEqual([]);
    expect(b.sink.delivered[0]?.id).toBe(message.id);
  });
});

describe('KafkaFanout: bridges', () => {
  it('delivers a record of a bridged Kafka topic to its destination, with kafka-* headers', async () => {
    const prices = `${h.topic}-prices`;
    const a = await h.start({ bridges: { [prices]: '/topic/prices' } });
    h.kafka.append(prices, {
      key: 'sym-1',
      value: '42',
      headers: [
        ['x-source', 'plain'],
        ['kafka-offset', 'forged'],
        ['destination', '/topic/elsewhere'],
      ],
    });
    await until(() => a.sink.delivered.length === 1);
    const [m] = a.sink.delivered;
    expect(m?.id).toBe(`${prices}-0-0`);
    expect(m?.destination).toBe('/topic/prices');
    expect(m?.position).toEqual({ epoch: 'p0', n: 0 });
    expect(m?.headers).toEqual([
      ['x-source', 'plain'],
      ['kafka-key', 'sym-1'],
      ['kafka-partition', '0'],
      ['kafka-offset', '0'],
      ['kafka-topic', prices],
    ]);
    expect(m && text(m)).toBe('42');
  });

  it('publishes to a bridged destination on its Kafka topic, keyed by a kafka-key header', async () => {
    const prices = `${h.topic}-prices`;
    const a = await h.start({ bridges: { [prices]: '/topic/prices' } });
    const message = outgoing('/topic/prices', 'hi', [
      ['kafka-key', 'sym-9'],
      ['kafka-offset', '7'],
      ['x-origin', 'stomp'],
    ]);
    await a.fanout.bus.publish(message);
    const [record] = h.kafka.records(prices);
    expect(record?.key?.toString()).toBe('sym-9');
    expect(record?.headers.map(([n, v]) => [n, v.toString()])).toEqual([
      ['x-origin', 'stomp'],
      [MESSAGE_ID_HEADER, message.id],
    ]);
    await until(() => a.sink.delivered.length === 1);
    expect(a.sink.delivered[0]?.id).toBe(message.id);
    expect(a.sink.delivered[0]?.headers).toEqual([
      ['x-origin', 'stomp'],
      ['kafka-key', 'sym-9'],
      ['kafka-partition', '0'],
      ['kafka-offset', '0'],
      ['kafka-topic', prices],
    ]);
  });

  it('vouches for resumes on a bridged topic of one partition, never on one of several', async () => {
    const wide = `${h.topic}-wide`;
    const narrow = `${h.topic}-narrow`;
    await h.kafka.ensureTopics([{ topic: wide, partitions: 3 }]);
    const a = await h.start({ bridges: { [wide]: '/topic/wide', [narrow]: '/topic/narrow' } });
    expect(a.fanout.log.coveredFrom('/topic/narrow', 'p0')).toBe(0);
    expect(a.fanout.log.coveredFrom('/topic/wide', 'p0')).toBeUndefined();
    expect(a.fanout.log.coveredFrom('/topic/x', 'p0')).toBe(0);
  });

  it('refuses bridges to anything but a /topic/ destination, bridges taken twice, and no brokers', () => {
    const create = (options: Partial<ConstructorParameters<typeof KafkaFanout>[0]>) =>
      new KafkaFanout({ brokers: 'memory:9092', topic: 't', ...options });
    expect(() => create({ bridges: { prices: '/queue/prices' } })).toThrow(
      'stompbus: --bridge prices=/queue/prices: not a /topic/ destination',
    );
    expect(() => create({ bridges: { a: '/topic/p', b: '/topic/p' } })).toThrow(
      'stompbus: --bridge b=/topic/p is bridged twice',
    );
    expect(() => create({ bridges: { 't.users': '/topic/p' } })).toThrow(/is bridged twice/);
    expect(() => create({ brokers: ' , ' })).toThrow('stompbus: --kafka-brokers names no broker');
  });
});
