/**
 * stompbus public API: the broker as a library ({@link createBroker},
 * {@link attachWebSocket}), the command's server ({@link StompServer}), the
 * cluster seams a backend implements, the errors, and the frame codec.
 * Cluster mode on Kafka is the separate entry `stompbus/kafka`.
 */
export { LocalFanout } from './broker/local-fanout.js';
export type { Message, Outgoing, Position } from './broker/message.js';
export type { BrokerOptions } from './broker/options.js';
export { DEFAULT_BROKER_OPTIONS } from './broker/options.js';
export type {
  BusSink,
  ClusterStats,
  DelayCounts,
  DurableLog,
  Fanout,
  FanoutReadiness,
  FanoutSink,
  InstanceSeen,
  LogSink,
  MessageBus,
  PartitionLag,
  Registry,
  RegistrySink,
} from './broker/seams.js';
export { BrokerStats } from './broker/stats.js';
export { type ErrorCode, ErrorCodes, StompError, type StompErrorOptions } from './errors.js';
export * from './frame/index.js';
export { type AdminOptions, AdminServer, DEFAULT_ADMIN_OPTIONS } from './ops/admin.js';
export type { ConsoleSnapshot } from './ops/console-feed.js';
export {
  type CloseReason,
  type Logger,
  type LogLevel,
  type LogMethod,
  SILENT_LOGGER,
} from './ops/log.js';
export {
  type AclConfig,
  AclError,
  type AclHooks,
  type AclOptions,
  type AclRule,
  aclAuthorizer,
} from './security/acl.js';
export {
  createJwtVerifier,
  type JwtAuthenticateOptions,
  type JwtOptions,
  type JwtVerifier,
  jwtAuthenticate,
  type TokenIdentity,
} from './security/jwt.js';
export {
  DEFAULT_SECURITY_OPTIONS,
  type SecurityOptions,
} from './security/options.js';
export {
  type ClusterOptions,
  DEFAULT_CLUSTER_OPTIONS,
  DEFAULT_LISTENER_OPTIONS,
  DEFAULT_SERVER_OPTIONS,
  type DrainOptions,
  type ListenerOptions,
  type ServerOptions,
  type ServerReadiness,
  StompServer,
} from './server.js';
export type { Access, Identity, StompVersion } from './session/api.js';
export type { SessionOptions } from './session/options.js';
export type { ConnectRequest } from './session/session.js';
export {
  type Authenticate,
  type Authorize,
  type AuthResult,
  type Body,
  type BrokerEvents,
  type CloseOptions,
  createBroker,
  DEFAULT_STOMP_BROKER_OPTIONS,
  type Principal,
  type SessionInfo,
  StompBroker,
  type StompBrokerOptions,
} from './stomp-broker.js';
export type { TransportKind } from './transport/connection.js';
export {
  type AttachOptions,
  attachWebSocket,
  type WebSocketEndpoint,
} from './transport/websocket.js';
export { VERSION } from './version.js';
