/**
 * Permissions per destination (docs/security.md): rules of an ACL file and
 * `stompbus.read:` / `stompbus.write:` scopes, matched against routing names
 * (`/user/<name>/queue/x` for user destinations). What nothing grants is refused.
 */

import { readFileSync } from 'node:fs';
import type { Access } from '../session/api.js';
import type { Authorize, Principal, StompBrokerOptions } from '../stomp-broker.js';
import { AclError, PatternTrie, parsePattern } from './acl-pattern.js';
import type { SecurityOptions } from './options.js';

export { AclError } from './acl-pattern.js';

/** One rule: what `user` (a name, or `"*"` for every session with a user) may read and write. */
export interface AclRule {
  readonly user: string;
  /** Patterns SUBSCRIBE may name. */
  readonly read?: readonly string[] | undefined;
  /** Patterns SEND may name. */
  readonly write?: readonly string[] | undefined;
}

/** The content of an ACL file: `{ "rules": [ ... ] }`. */
export interface AclConfig {
  readonly rules: readonly AclRule[];
}

/** Tuning of an {@link AclAuthorizer}. */
export interface AclOptions {
  /** Decisions of the rules kept per (access, user, destination); 0 keeps none. Default 10,000. */
  readonly cacheSize?: number;
}

/** The scope prefixes a token's `scope` claim grants with, as RabbitMQ's `rabbitmq.read:`. */
export const SCOPE_PREFIX: Readonly<Record<Access, string>> = {
  read: 'stompbus.read:',
  write: 'stompbus.write:',
};

const ACCESSES: readonly Access[] = ['read', 'write'];
const RULE_KEYS = new Set(['user', 'read', 'write', 'comment']);

/** Read and write patterns of one user (or of `"*"`). */
type Grants = Readonly<Record<Access, PatternTrie>>;

function grants(): Grants {
  return { read: new PatternTrie(), write: new PatternTrie() };
}

/** Checks the shape of a parsed ACL file and compiles its rules, by user. */
function compileRules(config: unknown, from: string): Map<string, Grants> {
  if (!isObject(config) || !Array.isArray(config.rules)) {
    throw new AclError(`${from}: expected { "rules": [ ... ] }`);
  }
  for (const key of Object.keys(config)) {
    if (key !== 'rules' && key !== 'comment') throw new AclError(`${from}: unknown key "${key}"`);
  }
  const byUser = new Map<string, Grants>();
  config.rules.forEach((rule: unknown, index: number) => {
    const where = `${from}: rules[${index}]`;
    if (!isObject(rule)) throw new AclError(`${where}: a rule is an object, got ${show(rule)}`);
    for (const key of Object.keys(rule)) {
      if (!RULE_KEYS.has(key)) throw new AclError(`${where}: unknown key "${key}"`);
    }
    if (typeof rule.user !== 'string' || rule.user === '') {
      throw new AclError(`${where}: "user" is a name or "*", got ${show(rule.user)}`);
    }
    const mine = byUser.get(rule.user) ?? grants();
    byUser.set(rule.user, mine);
    for (const access of ACCESSES) {
      const list = rule[access] ?? [];
      if (!Array.isArray(list)) throw new AclError(`${where}: "${access}" is a list of patterns`);
      list.forEach((p: unknown, i: number) => {
        mine[access].add(parsePattern(p, `${where}.${access}[${i}]`));
      });
    }
  });
  return byUser;
}

/** Reads and parses an ACL file; errors name the file. */
function readAclFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AclError(`${file}: cannot read: ${oneLine(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AclError(`${file}: not JSON: ${oneLine(error)}`);
  }
}

/** The grants of a session's scopes, compiled once per scope list (a session keeps its list). */
const scopeGrants = new WeakMap<readonly string[], Grants>();

function grantsOfScopes(scopes: readonly string[]): Grants {
  const known = scopeGrants.get(scopes);
  if (known) return known;
  const mine = grants();
  for (const scope of scopes) {
    for (const access of ACCESSES) {
      if (!scope.startsWith(SCOPE_PREFIX[access])) continue;
      try {
        mine[access].add(parsePattern(scope.slice(SCOPE_PREFIX[access].length), 'scope'));
      } catch {
        // A malformed scope from an identity provider grants nothing.
      }
    }
  }
  scopeGrants.set(scopes, mine);
  return mine;
}

/**
 * Decides SUBSCRIBE (`read`) and SEND (`write`) from ACL rules and the
 * session's `stompbus.read:` / `stompbus.write:` scopes; what neither grants
 * is refused. Rule decisions are cached per (access, user, destination),
 * bounded. Pass {@link authorizeSubscribe} and {@link authorizeSend} to
 * `createBroker`.
 */
export class AclAuthorizer {
  private readonly byUser: Map<string, Grants>;
  private readonly everyone: Grants | undefined;
  /** Decisions of the rules by user, then destination (a session's user string is reused: cheap to hash). */
  private readonly cache: Record<Access, Map<string, Map<string, boolean>>> = {
    read: new Map(),
    write: new Map(),
  };
  private cached = 0;
  private readonly cacheSize: number;

  /** `source`: an ACL file's path, its content, or its rules. Throws an {@link AclError}. */
  constructor(source: string | AclConfig | readonly AclRule[], options: AclOptions = {}) {
    const config =
      typeof source === 'string'
        ? readAclFile(source)
        : Array.isArray(source)
          ? { rules: source }
          : source;
    this.byUser = compileRules(config, typeof source === 'string' ? source : 'ACL rules');
    this.everyone = this.byUser.get('*');
    this.byUser.delete('*');
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  /** Whether `user` with `scopes` may `access` the routing name `destination`. */
  allows(
    access: Access,
    user: string | undefined,
    scopes: readonly string[],
    destination: string,
  ): boolean {
    if (user && this.rulesAllow(access, user, destination)) return true;
    return scopes.length > 0 && grantsOfScopes(scopes)[access].test(user, destination);
  }

  /** The `authorizeSubscribe` hook: a `read` of the routing name. */
  readonly authorizeSubscribe: Authorize = (principal: Principal, destination: string) =>
    this.allows('read', principal.user, principal.scopes, destination);

  /** The `authorizeSend` hook: a `write` of the destination. */
  readonly authorizeSend: Authorize = (principal: Principal, destination: string) =>
    this.allows('write', principal.user, principal.scopes, destination);

  private rulesAllow(access: Access, user: string, destination: string): boolean {
    const ofUser = this.cache[access].get(user);
    const known = ofUser?.get(destination);
    if (known !== undefined) return known;
    const allowed =
      (this.byUser.get(user)?.[access].test(user, destination) ?? false) ||
      (this.everyone?.[access].test(user, destination) ?? false);
    if (this.cacheSize <= 0) return allowed;
    // Emptied when full: a client naming ever new destinations cannot grow it.
    if (this.cached >= this.cacheSize) {
      this.cache.read.clear();
      this.cache.write.clear();
      this.cached = 0;
    }
    let map = this.cache[access].get(user);
    if (!map) {
      map = new Map();
      this.cache[access].set(user, map);
    }
    map.set(destination, allowed);
    this.cached++;
    return allowed;
  }
}

/** What {@link aclAuthorizer} gives: the two hooks of `createBroker`, and the decision itself. */
export interface AclHooks {
  readonly authorizeSubscribe: Authorize;
  readonly authorizeSend: Authorize;
  /** Whether `user` with `scopes` may `access` the routing name `destination`. */
  allows(
    access: Access,
    user: string | undefined,
    scopes: readonly string[],
    destination: string,
  ): boolean;
}

/**
 * Permissions per destination for an embedded broker, from an ACL file's
 * path, its content or its rules: `createBroker({ users, ...aclAuthorizer('acl.json') })`
 * or `aclAuthorizer([{ user: '*', read: ['/topic/**'], write: ['/topic/chat.{user}'] }])`.
 * Throws an {@link AclError} (one line) for a malformed ACL.
 */
export function aclAuthorizer(
  source: string | AclConfig | readonly AclRule[],
  options?: AclOptions,
): AclHooks {
  const acl = new AclAuthorizer(source, options);
  return {
    authorizeSubscribe: acl.authorizeSubscribe,
    authorizeSend: acl.authorizeSend,
    allows: (access, user, scopes, destination) => acl.allows(access, user, scopes, destination),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

function oneLine(error: unknown): string {
  return String((error as Error)?.message ?? error).replace(/\s*\n\s*/g, ' ');
}

/**
 * The server's permission hooks (src/security/hooks.ts): on as soon as an
 * ACL file or JWT login is configured (with JWT only, scopes alone grant);
 * off otherwise, so anonymous setups keep allowing everything. Hooks given
 * in the options win. Throws a one-line error naming `--acl-file`.
 */
export function aclHooksFor(
  options: SecurityOptions &
    Partial<Pick<StompBrokerOptions, 'authorizeSubscribe' | 'authorizeSend'>>,
): Partial<Pick<StompBrokerOptions, 'authorizeSubscribe' | 'authorizeSend'>> {
  const jwt = Boolean(options.jwtSecret || options.jwtPublicKey || options.jwksUrl);
  if (!options.aclFile && !jwt) return {};
  let acl: AclHooks;
  try {
    acl = aclAuthorizer(options.aclFile ?? []);
  } catch (error) {
    throw error instanceof AclError ? new AclError(`stompbus: --acl-file ${error.message}`) : error;
  }
  return {
    authorizeSubscribe: options.authorizeSubscribe ?? acl.authorizeSubscribe,
    authorizeSend: options.authorizeSend ?? acl.authorizeSend,
  };
}
