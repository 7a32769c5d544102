/**
 * Permissions per destination (src/security/acl.ts): rules by user, scopes,
 * the ACL file and its errors, and the hooks the server builds. The pattern
 * language is acl-pattern.spec.ts'; spec/e2e/acl.spec.ts holds the same rules
 * over real sockets.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/config.js';
import { AclError, type AclRule, aclAuthorizer, aclHooksFor } from '../../src/security/acl.js';
import { DEFAULT_SECURITY_OPTIONS } from '../../src/security/options.js';
import type { Principal } from '../../src/stomp-broker.js';

const dir = mkdtempSync(join(tmpdir(), 'stompbus-acl-'));
let files = 0;
/** Writes an ACL file (JSON of `content`, or text as is) and returns its path. */
function aclFile(content: unknown): string {
  const file = join(dir, `acl-${++files}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

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

/** The error message of `fn`, which must throw an AclError. */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AclError);
    return (error as Error).message;
  }
  throw new Error('did not throw');
}

describe('rules', () => {
  it('refuses what no rule grants, and keeps read and write apart', () => {
    const { read, write } = acl([{ user: 'alice', read: ['/topic/r'], write: ['/topic/w'] }]);
    expect(read('alice', '/topic/r')).toBe(true);
    expect(write('alice', '/topic/r')).toBe(false);
    expect(write('alice', '/topic/w')).toBe(true);
    expect(read('alice', '/topic/w')).toBe(false);
    expect(read('alice', '/topic/other')).toBe(false);
  });

  it('applies a named user\'s rules to that user only, and "*" rules to every user', () => {
    const { read } = acl([
      { user: 'alice', read: ['/topic/alice-only'] },
      { user: '*', read: ['/topic/everyone'] },
    ]);
    expect(read('alice', '/topic/alice-only')).toBe(true);
    expect(read('bob', '/topic/alice-only')).toBe(false);
    expect(read('alice', '/topic/everyone')).toBe(true);
    expect(read('bob', '/topic/everyone')).toBe(true);
  });

  it('grants nothing to a session without a user, not even what "*" grants', () => {
    const { read } = acl([{ user: '*', read: ['/**'] }]);
    expect(read(undefined, '/topic/x')).toBe(false);
  });

  it('adds up several rules of one user', () => {
    const { read, write } = acl([
      { user: 'alice', read: ['/topic/a'] },
      { user: 'alice', read: ['/topic/b'], write: ['/queue/c'] },
    ]);
    expect(read('alice', '/topic/a')).toBe(true);
    expect(read('alice', '/topic/b')).toBe(true);
    expect(write('alice', '/queue/c')).toBe(true);
  });

  it('treats a user named "*" as one more user (the "*" rules, nothing else)', () => {
    const { read } = acl([
      { user: 'alice', read: ['/topic/alice'] },
      { user: '*', read: ['/topic/all'] },
    ]);
    expect(read('*', '/topic/all')).toBe(true);
    expect(read('*', '/topic/alice')).toBe(false);
  });

  it('refuses everything with no rules', () => {
    const a = aclAuthorizer({ rules: [] });
    expect(a.allows('read', 'alice', [], '/topic/x')).toBe(false);
    expect(a.allows('write', 'alice', [], '/topic/x')).toBe(false);
  });
});

describe('scopes (stompbus.read:<pattern>, stompbus.write:<pattern>)', () => {
  it('adds grants to what the rules give', () => {
    const { read, write } = acl([{ user: '*', read: ['/topic/rules'] }]);
    const scopes = ['openid', 'stompbus.read:/topic/scoped.*', 'stompbus.write:/queue/{user}'];
    expect(read('alice', '/topic/rules', scopes)).toBe(true);
    expect(read('alice', '/topic/scoped.x', scopes)).toBe(true);
    expect(read('alice', '/topic/scoped.x')).toBe(false);
    expect(write('alice', '/topic/scoped.x', scopes)).toBe(false);
    expect(write('alice', '/queue/alice', scopes)).toBe(true);
    expect(write('alice', '/queue/bob', scopes)).toBe(false);
  });

  it('grants through scopes with no rules at all (JWT login without an ACL file)', () => {
    const a = aclAuthorizer([]);
    expect(a.allows('read', 'alice', ['stompbus.read:/topic/**'], '/topic/a.b')).toBe(true);
    expect(a.allows('write', 'alice', ['stompbus.read:/topic/**'], '/topic/a.b')).toBe(false);
  });

  it('ignores malformed and foreign scopes (they grant nothing)', () => {
    const a = aclAuthorizer([]);
    const scopes = [
      'stompbus.read:topic/x',
      'stompbus.read:/topic/**.x',
      'stompbus.read:/topic/a*',
      'rabbitmq.read:/topic/y',
      'stompbus.read /topic/z',
      'STOMPBUS.READ:/topic/w',
    ];
    for (const d of ['/topic/x', '/topic/a.x', '/topic/ab', '/topic/y', '/topic/z', '/topic/w']) {
      expect(a.allows('read', 'alice', scopes, d), d).toBe(false);
    }
  });
});

describe('the ACL file', () => {
  it('reads rules from a file', () => {
    const file = aclFile({
      comment: 'chat',
      rules: [
        { user: 'alice', read: ['/topic/chat.*'], write: ['/topic/chat.{user}'], comment: 'x' },
      ],
    });
    const a = aclAuthorizer(file);
    expect(a.allows('read', 'alice', [], '/topic/chat.room')).toBe(true);
    expect(a.allows('write', 'alice', [], '/topic/chat.alice')).toBe(true);
    expect(a.allows('write', 'alice', [], '/topic/chat.room')).toBe(false);
  });

  it.each([
    ['missing file', undefined, /acl-missing\.json: cannot read: ENOENT/],
    ['not JSON', '{ "rules": [', /: not JSON: /],
    ['no rules', { users: [] }, /: expected \{ "rules": \[ \.\.\. \] \}$/],
    ['rules not a list', { rules: {} }, /: expected \{ "rules": \[ \.\.\. \] \}$/],
    ['unknown top-level key', { rules: [], acl: 1 }, /: unknown key "acl"$/],
    [
      'a rule not an object',
      { rules: ['alice'] },
      /: rules\[0\]: a rule is an object, got "alice"$/,
    ],
    [
      'unknown rule key',
      { rules: [{ user: 'a', reads: [] }] },
      /: rules\[0\]: unknown key "reads"$/,
    ],
    ['no user', { rules: [{ read: [] }] }, /: rules\[0\]: "user" is a name or "\*", got nothing$/],
    ['empty user', { rules: [{ user: '' }] }, /: rules\[0\]: "user" is a name or "\*", got ""$/],
    [
      'read not a list',
      { rules: [{ user: 'a', read: '/topic/x' }] },
      /: rules\[0\]: "read" is a list of patterns$/,
    ],
    [
      'a pattern without "/"',
      { rules: [{ user: 'a' }, { user: 'b', write: ['/topic/x', 'topic/y'] }] },
      /: rules\[1\]\.write\[1\]: a pattern is a string starting with "\/", got "topic\/y"$/,
    ],
    [
      'a pattern not a string',
      { rules: [{ user: 'a', read: [7] }] },
      /: rules\[0\]\.read\[0\]: .* got 7$/,
    ],
    [
      '"**" not last',
      { rules: [{ user: 'a', read: ['/topic/**.x'] }] },
      /rules\[0\]\.read\[0\] "\/topic\/\*\*\.x": "\*\*" may only be the last segment$/,
    ],
    [
      '"*" inside a segment',
      { rules: [{ user: 'a', read: ['/topic/chat-*'] }] },
      /"\/topic\/chat-\*": "\*" and "\*\*" stand for whole segments/,
    ],
    [
      '"***"',
      { rules: [{ user: 'a', read: ['/topic/***'] }] },
      /"\/topic\/\*\*\*": "\*" and "\*\*" stand for whole segments/,
    ],
    [
      'another placeholder',
      { rules: [{ user: 'a', read: ['/topic/{login}'] }] },
      /: the only placeholder is \{user\}, as a whole segment$/,
    ],
    [
      '"{user}" inside a segment',
      { rules: [{ user: 'a', read: ['/topic/inbox-{user}'] }] },
      /: the only placeholder is \{user\}/,
    ],
  ])(
    'refuses a file with %s, in one line naming the file and the rule',
    (_what, content, message) => {
      const file = content === undefined ? join(dir, 'acl-missing.json') : aclFile(content);
      const text = failure(() => aclAuthorizer(file));
      expect(text.startsWith(`${file}: `)).toBe(true);
      expect(text).toMatch(message);
      expect(text).not.toContain('\n');
    },
  );

  it('checks rules given in code the same way', () => {
    const text = failure(() => aclAuthorizer([{ user: 'a', read: ['/topic/a*'] }]));
    expect(text).toMatch(/^ACL rules: rules\[0\]\.read\[0\] "\/topic\/a\*": /);
  });
});

describe('the hooks the server builds (aclHooksFor) and the --acl-file flag', () => {
  const principal = (user: string | undefined, scopes: string[] = []): Principal => ({
    sessionId: 's',
    user,
    remoteAddress: '127.0.0.1',
    transport: 'tcp',
    scopes,
  });

  it('adds no hooks with neither an ACL file nor JWT login: anonymous setups allow everything', () => {
    expect(aclHooksFor({ ...DEFAULT_SECURITY_OPTIONS })).toEqual({});
  });

  it('refuses what the ACL file does not grant', async () => {
    const file = aclFile({ rules: [{ user: 'alice', read: ['/topic/ok'] }] });
    const hooks = aclHooksFor({ ...DEFAULT_SECURITY_OPTIONS, aclFile: file });
    expect(await hooks.authorizeSubscribe?.(principal('alice'), '/topic/ok', [])).toBe(true);
    expect(await hooks.authorizeSubscribe?.(principal('alice'), '/topic/no', [])).toBe(false);
    expect(await hooks.authorizeSend?.(principal('alice'), '/topic/ok', [])).toBe(false);
  });

  it('with JWT login and no ACL file, lets scopes alone grant', async () => {
    const hooks = aclHooksFor({ ...DEFAULT_SECURITY_OPTIONS, jwtSecret: 's' });
    const scoped = principal('alice', ['stompbus.write:/queue/x']);
    expect(await hooks.authorizeSend?.(scoped, '/queue/x', [])).toBe(true);
    expect(await hooks.authorizeSend?.(principal('alice'), '/queue/x', [])).toBe(false);
    expect(await hooks.authorizeSubscribe?.(scoped, '/queue/x', [])).toBe(false);
  });

  it('lets hooks given in the options win', () => {
    const mine = () => true;
    const file = aclFile({ rules: [] });
    const hooks = aclHooksFor({ ...DEFAULT_SECURITY_OPTIONS, aclFile: file, authorizeSend: mine });
    expect(hooks.authorizeSend).toBe(mine);
    expect(hooks.authorizeSubscribe).not.toBe(mine);
  });

  it('reports a bad file as the flag it came from', () => {
    const file = aclFile({ rules: [{ user: 'a', read: ['x'] }] });
    expect(() => aclHooksFor({ ...DEFAULT_SECURITY_OPTIONS, aclFile: file })).toThrow(
      `stompbus: --acl-file ${file}: rules[0].read[0]: a pattern is a string starting with "/", got "x"`,
    );
    expect(() => parseArgs(['--acl-file', file], {})).toThrow(
      `stompbus: --acl-file ${file}: rules[0].read[0]: a pattern is a string starting with "/", got "x"`,
    );
    expect(() => parseArgs([], { STOMPBUS_ACL_FILE: file })).toThrow(/^stompbus: --acl-file /);
    const good = aclFile({ rules: [] });
    expect(parseArgs(['--acl-file', good], {})).toEqual({
      kind: 'serve',
      options: { aclFile: good },
    });
  });
});
