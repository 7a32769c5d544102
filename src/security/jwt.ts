import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import { StompError } from '../errors.js';
import type { Header } from '../frame/frame.js';
import type { ConnectRequest } from '../session/session.js';
import type { Authenticate, AuthResult } from '../stomp-broker.js';
import { checkPasscode, checkPasscodeAsync, isHashedPasscode } from '../users.js';
import type { SecurityOptions } from './options.js';

/** What {@link createJwtVerifier} and {@link jwtAuthenticate} take: the `jwt*` options and a few more. */
export interface JwtOptions
  extends Partial<
    Pick<
      SecurityOptions,
      | 'jwtSecret'
      | 'jwtPublicKey'
      | 'jwksUrl'
      | 'jwtIssuer'
      | 'jwtAudience'
      | 'jwtClockToleranceSec'
      | 'jwtUserClaim'
    >
  > {
  /** After a JWKS fetch, how long an unknown `kid` waits before it may fetch again, ms. Default 30,000. */
  jwksCooldownMs?: number;
  /** How long fetched JWKS keys are used before they are fetched again, ms. Default 600,000. */
  jwksCacheMaxAgeMs?: number;
  /** How long a JWKS fetch may take, ms. Default 5,000. */
  jwksTimeoutMs?: number;
}

/** Who a valid token says the session is. */
export interface TokenIdentity {
  readonly user: string;
  /** The `scope` claim's entries. */
  readonly scopes: readonly string[];
  /** When the session ends: `exp` (plus the clock tolerance), ms; undefined without `exp`. */
  readonly expiresAt: number | undefined;
}

/** Checks a token; rejects with `STOMP_ERR_AUTH_FAILED` and a short reason. */
export type JwtVerifier = (token: string) => Promise<TokenIdentity>;

const HMAC = ['HS256', 'HS384', 'HS512'] as const;
const RSA = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
const PSS = ['PS256', 'PS384', 'PS512'] as const;
const EC: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EDDSA = ['EdDSA', 'Ed25519'] as const;
/** What a JSON Web Key Set may sign with: public-key algorithms only, never HMAC or `none`. */
const ASYMMETRIC: readonly string[] = [...RSA, ...Object.values(EC), ...EDDSA];

/** A compact JWS: three base64url parts (RFC 7515 §7.1); the signature may be empty (`alg: none`). */
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether `text` has the shape of a JWT (RFC 7519 §7.2 step 1), so is taken for one. */
export function looksLikeJwt(text: string | undefined): text is string {
  return text !== undefined && COMPACT.test(text);
}

/**
 * The HMAC algorithms a secret is long enough for: RFC 7518 §3.2 wants a key
 * at least as long as the hash (32 bytes for HS256, 48 for HS384, 64 for HS512).
 */
function hmacAlgorithms(secret: Uint8Array): string[] {
  const allowed = HMAC.filter((alg) => secret.length * 8 >= Number(alg.slice(2)));
  if (allowed.length === 0) {
    throw new Error('stompbus: --jwt-secret needs at least 32 bytes (RFC 7518 §3.2)');
  }
  return allowed;
}

/** The algorithms a public key can verify: an RSA key never accepts an ECDSA or HMAC token. */
function keyAlgorithms(key: KeyObject, file: string): string[] {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return [...RSA];
  if (type === 'rsa-pss') return [...PSS];
  if (type === 'ed25519') return [...EDDSA];
  const curve = EC[key.asymmetricKeyDetails?.namedCurve ?? ''];
  if (type === 'ec' && curve) return [curve];
  throw new Error(`stompbus: --jwt-public-key ${file}: unsupported key type ${type}`);
}

/** Reads a PEM public key (or certificate) file. */
function readPublicKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`stompbus: cannot read --jwt-public-key ${file}: ${(error as Error).message}`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`stompbus: --jwt-public-key ${file} holds a private key; give the public one`);
  }
  try {
    return createPublicKey(pem);
  } catch (error) {
    throw new Error(`stompbus: --jwt-public-key ${file}: ${(error as Error).message}`);
  }
}

type Key = Uint8Array | KeyObject | webcrypto.CryptoKey;
type KeyResolver = (header: JWSHeaderParameters) => Key | Promise<Key>;

/** Picks the key for a token's `alg` (and `kid`) among those configured. */
function keyResolver(options: JwtOptions): { resolve: KeyResolver; algorithms: string[] } {
  const secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
  const hs = secret ? hmacAlgorithms(secret) : [];
  const file = options.jwtPublicKey;
  const pub = file ? readPublicKey(file) : undefined;
  const pubAlgs = pub && file ? keyAlgorithms(pub, file) : [];
  const jwks = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), {
        cooldownDuration: options.jwksCooldownMs ?? 30_000,
        cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
        timeoutDuration: options.jwksTimeoutMs ?? 5_000,
      })
    : undefined;
  const algorithms = [...new Set([...hs, ...pubAlgs, ...(jwks ? ASYMMETRIC : [])])];
  const resolve: KeyResolver = (header) => {
    const alg = header.alg ?? '';
    if (secret && hs.includes(alg)) return secret;
    // With both a key file and a key set, a token naming a key (kid) is for the set.
    if (pub && pubAlgs.includes(alg) && !(jwks && header.kid)) return pub;
    if (jwks) return jwks(header);
    throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
  };
  return { resolve, algorithms };
}

function refused(reason: string): StompError {
  return new StompError('STOMP_ERR_AUTH_FAILED', { detail: `token refused: ${reason}` });
}

/** jose's error codes as short reasons: enough to fix a client, nothing about the key. */
function reasonOf(error: unknown, alg: string): string {
  const code = (error as { code?: string }).code;
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad signature';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return `algorithm ${alg} is not allowed for the configured key`;
    case 'ERR_JWT_EXPIRED':
      return 'expired (exp)';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return claimReason((error as errors.JWTClaimValidationFailed).claim);
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key of the key set matches its kid and alg';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'several keys of the key set match: the token needs a kid';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed token';
    default:
      // A key set that cannot be fetched (down, timeout, not JSON) or another failure.
      return code?.startsWith('ERR_JWKS') ||
        code === 'ERR_JOSE_GENERIC' ||
        error instanceof TypeError
        ? 'the key set is unavailable'
        : 'invalid token';
  }
}

function claimReason(claim: string): string {
  if (claim === 'nbf') return 'not yet valid (nbf)';
  if (claim === 'iss') return 'wrong issuer (iss)';
  if (claim === 'aud') return 'wrong audience (aud)';
  return `invalid ${claim} claim`;
}

/** The `scope` claim: a space-separated string (RFC 8693 §4.2) or, as some issuers send it, an array. */
function scopesOf(payload: JWTPayload): string[] {
  const scope = payload.scope;
  if (typeof scope === 'string') return scope.split(' ').filter(Boolean);
  if (Array.isArray(scope)) return scope.filter((s): s is string => typeof s === 'string');
  return [];
}

/** The alg a token claims, or `undefined` when its header is not even JSON. */
function algOf(token: string): string | undefined {
  try {
    const alg = decodeProtectedHeader(token).alg;
    return typeof alg === 'string' ? alg : '';
  } catch {
    return undefined;
  }
}

/**
 * Makes a token verifier from the options: HS256/384/512 with `jwtSecret`,
 * the algorithms of the `jwtPublicKey` PEM file's key (RS*, PS*, ES*, EdDSA),
 * any public-key algorithm with keys of the `jwksUrl` key set (fetched on
 * first use, cached, fetched again for an unknown `kid` at most once per
 * cooldown). Never `alg: none`. Throws at once for a missing or unusable key.
 */
export function createJwtVerifier(options: JwtOptions): JwtVerifier {
  if (!options.jwtSecret && !options.jwtPublicKey && !options.jwksUrl) {
    throw new Error('stompbus: JWT login needs --jwt-secret, --jwt-public-key or --jwks-url');
  }
  const { resolve, algorithms } = keyResolver(options);
  const tolerance = options.jwtClockToleranceSec ?? 30;
  const claim = options.jwtUserClaim ?? 'sub';
  const verifyOptions = {
    algorithms,
    clockTolerance: tolerance,
    ...(options.jwtIssuer ? { issuer: options.jwtIssuer } : {}),
    ...(options.jwtAudience ? { audience: options.jwtAudience } : {}),
  };
  return async (token) => {
    const alg = algOf(token);
    if (alg === undefined) throw refused('malformed token');
    // RFC 7519 §6: an unsecured JWT carries no signature; it is never a login.
    if (alg.toLowerCase() === 'none') throw refused('alg none is not accepted');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, resolve, verifyOptions));
    } catch (error) {
      throw refused(reasonOf(error, alg));
    }
    const user = payload[claim];
    // A user name routes /user/<name>/... destinations: it cannot hold a slash.
    if (typeof user !== 'string' || user === '' || user.includes('/')) {
      throw refused(`no usable ${claim} claim`);
    }
    // RFC 7519 §4.1.4: the session lasts as long as a CONNECT with it would be accepted.
    const expiresAt =
      typeof payload.exp === 'number' ? (payload.exp + tolerance) * 1000 : undefined;
    return { user, scopes: scopesOf(payload), expiresAt };
  };
}

/** The token of an `authorization: Bearer <token>` header (RFC 6750 §2.1; names and scheme in any case). */
export function bearerToken(headers: readonly Header[]): string | undefined {
  // STOMP 1.2 "Repeated Header Entries": the first one counts.
  const value = headers.find(([name]) => name.toLowerCase() === 'authorization')?.[1];
  const match = value === undefined ? null : /^Bearer +(\S+) *$/i.exec(value);
  return match?.[1];
}

/** {@link jwtAuthenticate}'s options: the JWT options and the passcode users. */
export interface JwtAuthenticateOptions extends JwtOptions {
  /** Logins also accepted with their passcode (plain or `scrypt$...`). Default none. */
  users?: ReadonlyMap<string, string>;
}

/**
 * The `authenticate` hook of token login: the token comes in the CONNECT
 * `passcode` (the login is ignored, as RabbitMQ's OAuth 2 plugin does) or in
 * an `authorization: Bearer <token>` header. The session's user is the user
 * claim, its scopes the `scope` claim, and it ends at the token's `exp`
 * (plus the clock tolerance, as at CONNECT). A passcode that is not a JWT is
 * checked against `users`, so passcodes and tokens can be used side by side.
 * Without a JWT key it checks `users` only (scrypt off the event loop).
 * Refusals are `STOMP_ERR_AUTH_FAILED`.
 */
export function jwtAuthenticate(options: JwtAuthenticateOptions): Authenticate {
  const jwt = options.jwtSecret || options.jwtPublicKey || options.jwksUrl;
  const verify = jwt ? createJwtVerifier(options) : undefined;
  const users = options.users ?? new Map<string, string>();
  const hashes = [...users.values()].some(isHashedPasscode);
  return (request: ConnectRequest): AuthResult | Promise<AuthResult> => {
    if (verify) {
      const bearer = bearerToken(request.headers);
      if (bearer !== undefined) return verify(bearer);
      if (looksLikeJwt(request.passcode)) return verify(request.passcode);
    }
    if (users.size > 0) {
      const { login, passcode } = request;
      const entry = login === undefined ? undefined : users.get(login);
      // Plain passcodes stay synchronous (CONNECT holds no frames); scrypt runs on the thread pool.
      if (entry === undefined ? !hashes : !isHashedPasscode(entry)) {
        return checkPasscode(users, login, passcode) ? (login as string) : false;
      }
      return checkPasscodeAsync(users, login, passcode).then((ok) =>
        ok ? (login as string) : false,
      );
    }
    if (verify) {
      throw new StompError('STOMP_ERR_AUTH_FAILED', {
        detail: 'no token: send it as the passcode or in an authorization: Bearer header',
      });
    }
    return true;
  };
}
