/**
 * The pattern language of permissions (src/security/acl-pattern.ts): `*`,
 * `**`, `{user}`, literal `.` and `/`, checked case by case and against a
 * naive oracle with 1,000 rules.
 */
import { describe, expect, it } from 'vitest';
import { type AclRule, aclAuthorizer } from '../../src/security/acl.js';

/** `allows` of one rule set, read and write, for a user without scopes. */
function acl(rules: AclRule[]) {
  const a = aclAuthorizer(rules);
  return {
    read: (user: string | undefined, destination: string, scopes: string[] = []) =>
      a.allows('read', user, scopes, destination),
    write: (user: string | undefined, destination: string, scopes: string[] = []) =>
      a.allows('write', user, scopes, destination),
  };
}

const oracleCache = new Map<string, RegExp>();
/** A naive oracle of the pattern language: one regular expression per pattern, tried in turn. */
function reference(rules: AclRule[], user: string, destination: string): boolean {
  const literal = (text: string) => text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  const compile = (pattern: string) => {
    const source = pattern
      .split(/([/.])/)
      .map((t) =>
        t === '**' ? '.+' : t === '*' ? '[^/.]+' : t === '{user}' ? literal(user) : literal(t),
      )
      .join('');
    return new RegExp(`^${source}$`);
  };
  return rules.some(
    (rule) =>
      (rule.user === '*' || rule.user === user) &&
      (rule.read ?? []).some((pattern) => {
        const key = `${pattern}\0${user}`;
        const regex = oracleCache.get(key) ?? compile(pattern);
        oracleCache.set(key, regex);
        return regex.test(destination);
      }),
  );
}

describe('the pattern language', () => {
  it('matches a literal pattern exactly, and nothing else', () => {
    const { read } = acl([{ user: 'u', read: ['/topic/news'] }]);
    expect(read('u', '/topic/news')).toBe(true);
    for (const d of [
      '/topic/news2',
      '/topic/new',
      '/topic/news.x',
      '/topic/news/x',
      '/queue/news',
    ]) {
      expect(read('u', d), d).toBe(false);
    }
  });

  it('takes "." in a pattern literally (a separator, not "any character")', () => {
    const { read } = acl([{ user: 'u', read: ['/topic/a.b'] }]);
    expect(read('u', '/topic/a.b')).toBe(true);
    expect(read('u', '/topic/aXb')).toBe(false);
    expect(read('u', '/topic/a/b')).toBe(false);
  });

  it('"*" is exactly one non-empty segment: it stops at "." and at "/"', () => {
    const { read } = acl([{ user: 'u', read: ['/topic/chat.*', '/queue/*/orders'] }]);
    expect(read('u', '/topic/chat.room1')).toBe(true);
    expect(read('u', '/topic/chat.room-1_x~y')).toBe(true);
    expect(read('u', '/topic/chat.room1.sub')).toBe(false);
    expect(read('u', '/topic/chat.room1/sub')).toBe(false);
    expect(read('u', '/topic/chat.')).toBe(false);
    expect(read('u', '/topic/chat')).toBe(false);
    expect(read('u', '/topic/chat/room1')).toBe(false);
    expect(read('u', '/queue/eu/orders')).toBe(true);
    expect(read('u', '/queue/eu.west/orders')).toBe(false);
    expect(read('u', '/queue//orders')).toBe(false);
  });

  it('"**" is any non-empty rest, across "." and "/"', () => {
    const { read } = acl([{ user: 'u', read: ['/topic/chat.**', '/queue/**'] }]);
    expect(read('u', '/topic/chat.a')).toBe(true);
    expect(read('u', '/topic/chat.a.b/c.d')).toBe(true);
    expect(read('u', '/topic/chat.')).toBe(false);
    expect(read('u', '/topic/chat')).toBe(false);
    expect(read('u', '/topic/chatroom.a')).toBe(false);
    expect(read('u', '/queue/x/y.z')).toBe(true);
    expect(read('u', '/queue/')).toBe(false);
    expect(read('u', '/topic/x')).toBe(false);
  });

  it('"/**" grants everything', () => {
    const { read, write } = acl([{ user: 'u', read: ['/**'], write: ['/**'] }]);
    for (const d of ['/topic/a', '/queue/b.c', '/user/v/queue/x']) {
      expect(read('u', d)).toBe(true);
      expect(write('u', d)).toBe(true);
    }
  });

  it('"{user}" is the session\'s own user as one segment', () => {
    const { read, write } = acl([
      { user: '*', read: ['/topic/inbox.{user}', '/user/{user}/**'], write: ['/queue/{user}.*'] },
    ]);
    expect(read('alice', '/topic/inbox.alice')).toBe(true);
    expect(read('alice', '/topic/inbox.bob')).toBe(false);
    expect(read('bob', '/topic/inbox.bob')).toBe(true);
    expect(read('alice', '/topic/inbox.alice.x')).toBe(false);
    expect(read('alice', '/user/alice/queue/x')).toBe(true);
    expect(read('alice', '/user/bob/queue/x')).toBe(false);
    expect(write('alice', '/queue/alice.jobs')).toBe(true);
    expect(write('alice', '/queue/bob.jobs')).toBe(false);
  });

  it('never widens "{user}" with a name holding pattern characters: they are compared, not compiled', () => {
    const { read } = acl([{ user: '*', read: ['/topic/inbox.{user}'] }]);
    expect(read('*', '/topic/inbox.*')).toBe(true);
    expect(read('*', '/topic/inbox.alice')).toBe(false);
    expect(read('**', '/topic/inbox.alice')).toBe(false);
    expect(read('{user}', '/topic/inbox.alice')).toBe(false);
    expect(read('{user}', '/topic/inbox.{user}')).toBe(true);
  });

  it('gives a name holding "." or "/" nothing through "{user}" (it would reach into other users\' segments)', () => {
    const { read } = acl([{ user: '*', read: ['/topic/inbox.{user}', '/topic/inbox.{user}.*'] }]);
    // bob.x must not get bob's /topic/inbox.bob.*, nor bob bob.x's inbox through it.
    expect(read('bob.x', '/topic/inbox.bob.x')).toBe(false);
    expect(read('a/b', '/topic/inbox.a/b')).toBe(false);
    expect(read('bob', '/topic/inbox.bob.x')).toBe(true);
    expect(read('bob', '/topic/inbox.bob')).toBe(true);
  });

  it('matches "{user}" for no session without a user', () => {
    const { read } = acl([{ user: '*', read: ['/topic/inbox.{user}'] }]);
    expect(read(undefined, '/topic/inbox.')).toBe(false);
    expect(read('', '/topic/inbox.')).toBe(false);
  });

  it('keeps patterns sharing a prefix apart (one tree of segments)', () => {
    const { read } = acl([
      { user: 'u', read: ['/topic/a.b.c', '/topic/a.*.d', '/topic/a.b.**', '/topic/{user}.x'] },
    ]);
    expect(read('u', '/topic/a.b.c')).toBe(true);
    expect(read('u', '/topic/a.z.d')).toBe(true);
    expect(read('u', '/topic/a.b.zz.y')).toBe(true);
    expect(read('u', '/topic/a.z.c')).toBe(false);
    expect(read('u', '/topic/u.x')).toBe(true);
    expect(read('u', '/topic/v.x')).toBe(false);
  });

  it('decides as a naive one-regex-per-pattern oracle, with 1,000 rules, any cache size', () => {
    const shapes = [
      (i: number): AclRule => ({ user: `user${i % 50}`, read: [`/topic/u${i % 100}.*`] }),
      (i: number): AclRule => ({ user: '*', read: [`/topic/app${i % 100}.*.x`] }),
      (i: number): AclRule => ({ user: '*', read: [`/topic/u${i % 100}.{user}`] }),
      (i: number): AclRule => ({
        user: `user${i % 50}`,
        read: [`/topic/app${i % 100}.${i % 7}.**`],
      }),
    ];
    const rules = Array.from({ length: 1000 }, (_, i) =>
      (shapes[i % 4] as (i: number) => AclRule)(i),
    );
    const checks: Array<[string, string]> = [];
    for (let i = 0; i < 400; i++) {
      const last = [`${i % 7}`, `${i % 7}.x`, `user${i % 50}`, `${i % 7}.x.y`][i % 4];
      checks.push([`user${(i * 7) % 50}`, `/topic/${i % 3 ? 'u' : 'app'}${i % 100}.${last}`]);
    }
    const expected = checks.map(([u, d]) => reference(rules, u, d));
    for (const cacheSize of [0, 7, 10_000]) {
      const a = aclAuthorizer(rules, { cacheSize });
      // Twice: the second pass answers from the cache where it kept anything.
      for (let pass = 0; pass < 2; pass++) {
        expect(checks.map(([u, d]) => a.allows('read', u, [], d))).toEqual(expected);
      }
    }
    expect(expected.filter(Boolean).length).toBeGreaterThan(20);
    expect(expected.filter((x) => !x).length).toBeGreaterThan(20);
  });
});
