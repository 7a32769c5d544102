import { describe, expect, it } from 'vitest';
import { History } from '../../src/broker/history.js';
import { Mailboxes } from '../../src/broker/mailbox.js';
import { createMessage, type Message } from '../../src/broker/message.js';

const EMPTY = new Uint8Array(0);

function message(destination: string, n: number, at: number, epoch = 'e'): Message {
  return createMessage({ id: `m${n}`, destination, headers: [], body: EMPTY }, { epoch, n }, at);
}

const ns = (messages: Message[]) => messages.map((m) => m.position?.n);

describe('History (resume after a position)', () => {
  it('replays what came after the position, complete when nothing after it was dropped', () => {
    const history = new History({ maxMessages: 10, maxAgeMs: 60_000 });
    for (let n = 1; n <= 5; n++) history.append(message('/topic/a', n, 0), 0);
    const replay = history.replay('/topic/a', { epoch: 'e', n: 2 }, 1, 0);
    expect(ns(replay.messages)).toEqual([3, 4, 5]);
    expect(replay.complete).toBe(true);
  });

  it('is incomplete once a message after the position fell out by count', () => {
    const history = new History({ maxMessages: 3, maxAgeMs: 60_000 });
    for (let n = 1; n <= 6; n++) history.append(message('/topic/a', n, 0), 0);
    expect(history.replay('/topic/a', { epoch: 'e', n: 1 }, 1, 0)).toMatchObject({
      complete: false,
    });
    // From the newest dropped position on, nothing is missing.
    const fromThree = history.replay('/topic/a', { epoch: 'e', n: 3 }, 1, 0);
    expect(ns(fromThree.messages)).toEqual([4, 5, 6]);
    expect(fromThree.complete).toBe(true);
  });

  it('is incomplete once a message after the position expired by age', () => {
    const history = new History({ maxMessages: 100, maxAgeMs: 1_000 });
    history.append(message('/topic/a', 1, 0), 0);
    history.append(message('/topic/a', 2, 5_000), 5_000);
    const replay = history.replay('/topic/a', { epoch: 'e', n: 0 }, 0, 5_000);
    expect(ns(replay.messages)).toEqual([2]);
    expect(replay.complete).toBe(false);
  });

  it('remembers drops of a destination it forgot (swept idle), per epoch', () => {
    const history = new History({ maxMessages: 100, maxAgeMs: 1_000 });
    history.append(message('/topic/idle', 7, 0), 0);
    history.sweep(10_000);
    expect(history.size).toBe(0);
    expect(history.replay('/topic/idle', { epoch: 'e', n: 3 }, 0, 10_000).complete).toBe(false);
    expect(history.replay('/topic/idle', { epoch: 'e', n: 7 }, 0, 10_000).complete).toBe(true);
  });

  it('is incomplete for an unknown epoch or a position before what this instance has seen', () => {
    const history = new History({ maxMessages: 100, maxAgeMs: 60_000 });
    for (let n = 10; n <= 12; n++) history.append(message('/topic/a', n, 0), 0);
    const unknown = history.replay('/topic/a', { epoch: 'old', n: 500 }, undefined, 0);
    expect(unknown.complete).toBe(false);
    expect(ns(unknown.messages)).toEqual([10, 11, 12]);
    // Seen from 10 on: a client at 5 may have missed 6 to 9.
    expect(history.replay('/topic/a', { epoch: 'e', n: 5 }, 10, 0).complete).toBe(false);
    expect(history.replay('/topic/a', { epoch: 'e', n: 9 }, 10, 0).complete).toBe(true);
  });

  it('keeps nothing and vouches for nothing with maxMessages 0', () => {
    const history = new History({ maxMessages: 0, maxAgeMs: 60_000 });
    history.append(message('/topic/a', 1, 0), 0);
    expect(history.size).toBe(0);
    expect(history.replay('/topic/a', { epoch: 'e', n: 0 }, 1, 0).complete).toBe(false);
  });
});

describe('Mailboxes (offline delivery)', () => {
  it('keeps letters per user in arrival order, per destination', () => {
    const boxes = new Mailboxes({ maxMessages: 10, maxAgeMs: 60_000 });
    boxes.add(message('/user/bob/queue/a', 1, 0), 0);
    boxes.add(message('/user/bob/queue/b', 2, 0), 0);
    boxes.add(message('/user/bob/queue/a', 3, 0), 0);
    boxes.add(message('/user/eve/queue/a', 4, 0), 0);
    expect(boxes.waiting('/user/bob/queue/a', 0).map((l) => l.message.id)).toEqual(['m1', 'm3']);
    expect(boxes.count('bob')).toBe(3);
    expect(boxes.remove('/user/bob/queue/a', 'm1')).toBe(true);
    expect(boxes.remove('/user/bob/queue/a', 'm1')).toBe(false);
    expect(boxes.letter('/user/bob/queue/a', 'm3')?.message.id).toBe('m3');
  });

  it('drops the oldest letter of a user past the count bound, and expired ones by age', () => {
    const boxes = new Mailboxes({ maxMessages: 2, maxAgeMs: 1_000 });
    for (let n = 1; n <= 3; n++) boxes.add(message('/user/bob/queue/a', n, 0), 0);
    expect(boxes.waiting('/user/bob/queue/a', 0).map((l) => l.message.id)).toEqual(['m2', 'm3']);
    boxes.sweep(2_000);
    expect(boxes.count('bob')).toBe(0);
  });

  it('adds a letter read twice (a consumer re-reading Kafka) once', () => {
    const boxes = new Mailboxes({ maxMessages: 10, maxAgeMs: 60_000 });
    const first = boxes.add(message('/user/bob/queue/a', 1, 0), 0);
    expect(boxes.add(message('/user/bob/queue/a', 1, 0), 0)).toBe(first);
    expect(boxes.count('bob')).toBe(1);
  });
});
