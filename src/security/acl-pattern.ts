/**
 * The pattern language of permissions (docs/security.md). A destination is
 * segments joined by separators (`/` and `.`): `/topic/chat.room1` is
 * `""` `/` `topic` `/` `chat` `.` `room1`. In a pattern, a whole segment `*`
 * is any one non-empty segment, a last segment `**` is any non-empty rest
 * (separators included) and `{user}` is the session's user; every other
 * character stands for itself.
 */

/** A malformed pattern or ACL: the message is one line saying where and what. */
export class AclError extends Error {
  override readonly name = 'AclError';
}

const STAR = '*';
const REST = '**';
const USER = '{user}';

/** A destination or pattern cut at its separators, which are kept: segments at even indexes. */
function tokens(text: string): string[] {
  return text.split(/([/.])/);
}

/**
 * Checks a pattern and cuts it into tokens. Wildcards stand for whole
 * segments only (`chat-*` is refused rather than guessed at), so what a
 * pattern grants is always plain to read.
 */
export function parsePattern(pattern: unknown, where: string): string[] {
  if (typeof pattern !== 'string' || !pattern.startsWith('/')) {
    const got = pattern === undefined ? 'nothing' : JSON.stringify(pattern);
    throw new AclError(`${where}: a pattern is a string starting with "/", got ${got}`);
  }
  const list = tokens(pattern);
  for (let i = 0; i < list.length; i += 2) {
    const segment = list[i] as string;
    const fail = (why: string) => {
      throw new AclError(`${where} ${JSON.stringify(pattern)}: ${why}`);
    };
    if (segment === REST && i !== list.length - 1) fail('"**" may only be the last segment');
    if (segment === STAR || segment === REST || segment === USER) continue;
    if (segment.includes('*')) fail('"*" and "**" stand for whole segments (between / and .)');
    if (segment.includes('{') || segment.includes('}')) {
      fail('the only placeholder is {user}, as a whole segment');
    }
  }
  return list;
}

/** One step of a {@link PatternTrie}: what may follow the tokens matched so far. */
interface TrieNode {
  /** Literal next tokens (segments and separators). */
  readonly next: Map<string, TrieNode>;
  /** `*`: any one non-empty segment. */
  star: TrieNode | undefined;
  /** `{user}`: the session's user as one segment. */
  user: TrieNode | undefined;
  /** A pattern ends here with `**`: any non-empty rest matches. */
  rest: boolean;
  /** A pattern ends here. */
  end: boolean;
}

function node(): TrieNode {
  return { next: new Map(), star: undefined, user: undefined, rest: false, end: false };
}

/**
 * Many patterns as one tree of segments, built once: a test walks the
 * destination's segments, so its cost does not grow with the number of
 * patterns (1,000 patterns cost what one does, bar the wildcard branches).
 */
export class PatternTrie {
  private readonly root = node();
  private hasUser = false;
  /** How many patterns were added. */
  size = 0;

  /** Adds a pattern cut by {@link parsePattern}. */
  add(pattern: readonly string[]): void {
    let at = this.root;
    pattern.forEach((token, i) => {
      if (i % 2 === 1) {
        at = child(at.next, token);
      } else if (token === REST) {
        at.rest = true;
      } else if (token === STAR) {
        at.star ??= node();
        at = at.star;
      } else if (token === USER) {
        this.hasUser = true;
        at.user ??= node();
        at = at.user;
      } else {
        at = child(at.next, token);
      }
    });
    if (pattern[pattern.length - 1] !== REST) at.end = true;
    this.size++;
  }

  /**
   * Whether a pattern matches `destination` for `user`. `{user}` matches the
   * name exactly as one segment, compared as a string, never compiled: a name
   * holding `*` or `{user}` is just those characters, and a name holding a
   * separator (`.` or `/`) or none at all matches no `{user}` segment.
   */
  test(user: string | undefined, destination: string): boolean {
    if (this.size === 0) return false;
    const usable = this.hasUser && user !== undefined && user !== '' && !/[/.]/.test(user);
    return walk(this.root, tokens(destination), 0, usable ? user : undefined);
  }
}

function child(map: Map<string, TrieNode>, token: string): TrieNode {
  let next = map.get(token);
  if (!next) {
    next = node();
    map.set(token, next);
  }
  return next;
}

/** Depth-first over the trie; `i` is the destination token to match next. */
function walk(at: TrieNode, list: readonly string[], i: number, user: string | undefined): boolean {
  if (i === list.length) return at.end;
  const token = list[i] as string;
  if (i % 2 === 1) {
    const next = at.next.get(token);
    return next !== undefined && walk(next, list, i + 1, user);
  }
  // `**` needs a non-empty rest: not just one empty last segment.
  if (at.rest && (i < list.length - 1 || token !== '')) return true;
  const literal = at.next.get(token);
  if (literal && walk(literal, list, i + 1, user)) return true;
  if (at.star && token !== '' && walk(at.star, list, i + 1, user)) return true;
  return at.user !== undefined && token === user && walk(at.user, list, i + 1, user);
}
