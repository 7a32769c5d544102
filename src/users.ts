import {
  createHash,
  randomBytes,
  type ScryptOptions,
  scrypt,
  scryptSync,
  timingSafeEqual,
} from 'node:crypto';

/**
 * Passcodes in `users` are plain text or scrypt hashes (what
 * `stompbus hash-passcode` prints), in this one-line form:
 *
 *     scrypt$N=16384;r=8;p=1$<salt>$<hash>
 *
 * `N` (CPU/memory cost, a power of two), `r` (block size) and `p`
 * (parallelism) are scrypt's parameters (RFC 7914); salt and hash are
 * base64url, 16 and 32 bytes. The parameters are separated by `;`, not `,`,
 * because `--user` and `STOMPBUS_USERS` split their lists on commas.
 */
const PREFIX = 'scrypt$';
const HASHED = /^scrypt\$N=(\d+);r=(\d+);p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

/**
 * The defaults: N = 2^14, r = 8, p = 1, scrypt's parameters for interactive
 * logins (Percival, "Stronger key derivation via sequential memory-hard
 * functions"): 16 MiB and some 50-100 ms of one thread-pool thread per CONNECT.
 */
export const DEFAULT_SCRYPT = Object.freeze({ N: 16384, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on the parameters a users file may ask for: a typo must not cost gigabytes per CONNECT. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

interface Hashed {
  readonly options: ScryptOptions;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Whether a users entry is a hash (`scrypt$...`) rather than a plain passcode. */
export function isHashedPasscode(entry: string): boolean {
  return entry.startsWith(PREFIX);
}

/** Parses `scrypt$N=…;r=…;p=…$salt$hash`; throws on a malformed or out-of-bounds entry. */
function parseHashed(entry: string): Hashed {
  const m = HASHED.exec(entry);
  const [N, r, p] = [Number(m?.[1]), Number(m?.[2]), Number(m?.[3])];
  const powerOfTwo = N > 1 && (N & (N - 1)) === 0;
  if (!m || !powerOfTwo || N > MAX_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P) {
    throw new Error(
      'stompbus: a hashed passcode must read scrypt$N=<power of 2 up to 2^20>;r=<1-32>;p=<1-16>$<salt>$<hash> (see stompbus hash-passcode)',
    );
  }
  // scrypt needs 128·N·r bytes; Node refuses above maxmem (32 MiB by default).
  const options = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  const [salt, hash] = [m[4] as string, m[5] as string].map((x) => Buffer.from(x, 'base64url'));
  return { options, salt: salt as Buffer, hash: hash as Buffer };
}

/**
 * Checks that every hashed entry of `users` is well formed, so that a bad
 * users file fails at start rather than at a CONNECT.
 */
export function validateUsers(users: ReadonlyMap<string, string>): void {
  for (const [name, entry] of users) {
    if (!isHashedPasscode(entry)) continue;
    try {
      parseHashed(entry);
    } catch (error) {
      throw new Error(`${(error as Error).message}; user ${JSON.stringify(name)}`);
    }
  }
}

/**
 * Hashes a passcode for a users file: returns `scrypt$N=…;r=…;p=…$salt$hash`
 * with a fresh random salt. Runs scrypt on the thread pool.
 */
export async function hashPasscode(
  passcode: string,
  params: { N: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const head = `${PREFIX}N=${params.N};r=${params.r};p=${params.p}$${salt.toString('base64url')}`;
  const { options } = parseHashed(`${head}$AA`);
  const hash = await scryptAsync(passcode, salt, KEY_BYTES, options);
  return `${head}$${hash.toString('base64url')}`;
}

/** Equal in constant time, whatever the lengths: both sides are hashed to 32 bytes first. */
function equal(a: Buffer, b: Buffer): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

/**
 * Whether `passcode` is `login`'s in `users`, compared in constant time.
 * Hashed entries are checked with `scryptSync`, which blocks the event loop
 * for as long as scrypt runs: the server uses {@link checkPasscodeAsync}.
 */
export function checkPasscode(
  users: ReadonlyMap<string, string>,
  login: string | undefined,
  passcode: string | undefined,
): boolean {
  const expected = login === undefined ? undefined : users.get(login);
  if (expected === undefined || passcode === undefined) return false;
  if (!isHashedPasscode(expected)) return equal(Buffer.from(expected), Buffer.from(passcode));
  const { options, salt, hash } = parseHashed(expected);
  return equal(scryptSync(passcode, salt, hash.length, options), hash);
}

/** A hash of nothing anyone knows: unknown logins cost as much as known ones. */
let decoy: Promise<string> | undefined;

/**
 * {@link checkPasscode} with scrypt on the thread pool, so that other
 * sessions are served meanwhile. When `users` holds hashes, an unknown login
 * costs one scrypt too, so that timing does not tell which logins exist.
 */
export async function checkPasscodeAsync(
  users: ReadonlyMap<string, string>,
  login: string | undefined,
  passcode: string | undefined,
): Promise<boolean> {
  const known = login === undefined ? undefined : users.get(login);
  if (known !== undefined && !isHashedPasscode(known)) {
    return checkPasscode(users, login, passcode);
  }
  let entry = known;
  if (entry === undefined) {
    if (![...users.values()].some(isHashedPasscode)) return false;
    decoy ??= hashPasscode(randomBytes(KEY_BYTES).toString('base64url'));
    entry = await decoy;
  }
  const { options, salt, hash } = parseHashed(entry);
  const got = await scryptAsync(passcode ?? '', salt, hash.length, options);
  return equal(got, hash) && known !== undefined && passcode !== undefined;
}

function scryptAsync(
  passcode: string,
  salt: Buffer,
  length: number,
  options: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passcode, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}
