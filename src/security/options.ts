/**
 * Token login and permissions as the command line sets them up; the server
 * builds the broker's `authenticate`, `authorizeSubscribe` and
 * `authorizeSend` hooks from them (docs/security.md).
 */
export interface SecurityOptions {
  /** JWT login: an HMAC secret (HS256, HS384, HS512). Default off. */
  jwtSecret: string | undefined;
  /** JWT login: a PEM public key file (RS*, PS*, ES*, EdDSA). Default off. */
  jwtPublicKey: string | undefined;
  /** JWT login: a JSON Web Key Set URL, fetched and cached, keys rotated by `kid`. Default off. */
  jwksUrl: string | undefined;
  /** The `iss` a token must carry. Default: any. */
  jwtIssuer: string | undefined;
  /** The `aud` a token must carry. Default: any. */
  jwtAudience: string | undefined;
  /** Leeway for `exp` and `nbf`, seconds. Default 30. */
  jwtClockToleranceSec: number;
  /** The claim naming the session's user. Default `sub`. */
  jwtUserClaim: string;
  /** JSON file of read and write rules per user; what no rule grants is refused. Default off. */
  aclFile: string | undefined;
}

/** The defaults of {@link SecurityOptions}: all off. */
export const DEFAULT_SECURITY_OPTIONS: Readonly<SecurityOptions> = Object.freeze({
  jwtSecret: undefined,
  jwtPublicKey: undefined,
  jwksUrl: undefined,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  jwtClockToleranceSec: 30,
  jwtUserClaim: 'sub',
  aclFile: undefined,
});
