import type { StompBrokerOptions } from '../stomp-broker.js';
import { validateUsers } from '../users.js';
import { aclHooksFor } from './acl.js';
import { jwtAuthenticate } from './jwt.js';
import type { SecurityOptions } from './options.js';

/**
 * The broker hooks the command line's security options ask for: token
 * login and passcodes (`authenticate`), permissions per destination
 * (`authorizeSubscribe`, `authorizeSend`). Hooks given in the options win.
 */
export async function securityHooks(
  options: SecurityOptions & Partial<StompBrokerOptions>,
): Promise<Partial<StompBrokerOptions>> {
  const hooks: Partial<StompBrokerOptions> = {};
  // Token login (JWT) and passcodes (plain or scrypt, checked off the event loop).
  const users = options.users ?? new Map<string, string>();
  validateUsers(users);
  const jwt = options.jwtSecret || options.jwtPublicKey || options.jwksUrl;
  if (options.authenticate) hooks.authenticate = options.authenticate;
  else if (jwt || users.size > 0) hooks.authenticate = jwtAuthenticate({ ...options, users });
  // Token users are not listed anywhere: any user name may be sent to.
  if (jwt && !options.knowsUser) hooks.knowsUser = () => true;
  // Permissions per destination (ACL file, token scopes).
  Object.assign(hooks, aclHooksFor(options));
  return hooks;
}
