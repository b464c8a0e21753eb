import { createClient, createCluster, createSentinel } from 'redis';
import type { RedisClientOptions, RedisClusterOptions, RedisSentinelOptions } from 'redis';
import type { RedisStoreConfig } from '../config/schema.js';

/**
 * Builds node-redis connections for the Redis store and the admin commands:
 * a single server, a Sentinel-managed master or a cluster, from
 * `store.redis`. The rest of the project uses them only through the narrow
 * interfaces below.
 */

/** Connection timeout of each socket, in milliseconds, unless `clientOptions.socket.connectTimeout` sets another. */
export const REDIS_CONNECT_TIMEOUT_MS = 5_000;
/** First and maximum delay between reconnect attempts, in milliseconds; the delay doubles per attempt. */
export const RECONNECT_MIN_DELAY_MS = 100;
export const RECONNECT_MAX_DELAY_MS = 2_000;

/**
 * Reconnect delay for node-redis' `reconnectStrategy`: exponential backoff
 * with up to 100 ms of jitter, so replicas do not reconnect in step.
 */
export function reconnectDelayMs(retries: number): number {
  const exponential = Math.min(RECONNECT_MIN_DELAY_MS * 2 ** Math.min(retries, 16), RECONNECT_MAX_DELAY_MS);
  return exponential + Math.floor(Math.random() * 100);
}

/**
 * The Redis commands this project sends, with node-redis v5's argument and
 * reply shapes. node-redis' client, sentinel and cluster objects all provide
 * them under these names.
 */
export interface RedisCommands {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: { condition?: 'NX' | 'XX' }): Promise<string | null>;
  hGet(key: string, field: string): Promise<string | null>;
  hGetAll(key: string): Promise<Record<string, string>>;
  hmGet(key: string, fields: string[]): Promise<Array<string | null>>;
  hSet(key: string, fieldValues: Record<string, string>): Promise<number>;
  hSetNX(key: string, field: string, value: string): Promise<number>;
  hDel(key: string, fields: string | string[]): Promise<number>;
  hLen(key: string): Promise<number>;
  hScan(key: string, cursor: string, options?: { COUNT?: number; MATCH?: string }): Promise<{ cursor: string; entries: Array<{ field: string; value: string }> }>;
  sAdd(key: string, members: string | string[]): Promise<number>;
  sRem(key: string, members: string | string[]): Promise<number>;
  sMembers(key: string): Promise<string[]>;
  unlink(keys: string | string[]): Promise<number>;
  publish(channel: string, message: string): Promise<number>;
  xAdd(
    key: string,
    id: string,
    fields: Record<string, string>,
    options?: { TRIM?: { strategy?: 'MAXLEN'; strategyModifier?: '=' | '~'; threshold: number } },
  ): Promise<string>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export type MessageListener = (message: string, channel: string) => void;

/** A node-redis client, sentinel or cluster object, seen through the methods this project uses. */
export interface RedisHandle extends RedisCommands {
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  subscribe(channels: string[], listener: MessageListener): Promise<unknown>;
}

export type RedisMode = 'standalone' | 'sentinel' | 'cluster';

/** The connections of one store or admin session. */
export interface RedisConnections {
  mode: RedisMode;
  /** Sends every command. */
  command: RedisHandle;
  /**
   * Receives pub/sub messages. A second client for a single server; with
   * Sentinel and cluster the same object, which keeps its own pub/sub
   * connection. Undefined when not requested.
   */
  subscriber: RedisHandle | undefined;
  /** Every distinct object to connect and close. */
  handles: RedisHandle[];
  /** Whether the command connection can send now, as node-redis reports it. */
  isCommandReady(): boolean;
  /** Whether the pub/sub connection is connected, as node-redis reports it. */
  isSubscriberReady(): boolean;
}

/** `store.redis` cannot be turned into client options; the message names the key and the fix. */
export class RedisOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisOptionsError';
  }
}

/** Replaces any password in a Redis URL with `***`, for messages and logs. */
export function redactRedisUrl(url: string): string {
  // The userinfo ends at the last "@" before the host, so a raw "@" in the password stays hidden.
  return url.replace(/^(rediss?:\/\/[^:@/]*):[^/]*@/, '$1:***@');
}

export interface ConnectionOptions {
  /** Also create a connection for pub/sub. */
  subscriber: boolean;
  /**
   * Reconnect with backoff after a lost connection (default). When false, a
   * single server's connection fails at once, which suits a command-line
   * tool; Sentinel and cluster objects keep node-redis' own handling.
   */
  reconnect?: boolean;
}

/** Builds (but does not connect) the clients for `config`; throws RedisOptionsError for conflicting keys. */
export function createRedisConnections(config: RedisStoreConfig, options: ConnectionOptions): RedisConnections {
  if (config.sentinel !== undefined && config.cluster !== undefined) {
    throw new RedisOptionsError('store.redis.sentinel and store.redis.cluster are both set; set only the one that matches the deployment');
  }
  const urlHasCredentials = /^rediss?:\/\/[^/]*@/.test(config.url);
  if (urlHasCredentials && (config.username !== undefined || config.password !== undefined)) {
    throw new RedisOptionsError('store.redis.url contains credentials and store.redis.username or password is set too; give them in one place only');
  }
  if (config.sentinel !== undefined) {
    return sentinelConnections(config, config.sentinel);
  }
  if (config.cluster !== undefined) {
    return clusterConnections(config, config.cluster);
  }
  return standaloneConnections(config, options.subscriber, options.reconnect ?? true);
}

function credentials(config: RedisStoreConfig): { username?: string; password?: string } {
  const result: { username?: string; password?: string } = {};
  if (config.username !== undefined && config.username !== '') {
    result.username = config.username;
  }
  if (config.password !== undefined) {
    result.password = config.password;
  }
  return result;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as Record<string, unknown>) } : {};
}

function isTlsUrl(url: string): boolean {
  return url.startsWith('rediss://');
}

/**
 * Options for every data-node client: `clientOptions`, then credentials, with
 * the offline queue off, so a command fails at once while the connection is
 * down instead of waiting for it.
 */
function nodeClientOptions(config: RedisStoreConfig, socketDefaults: Record<string, unknown>): Record<string, unknown> {
  const clientOptions = record(config.clientOptions);
  return {
    disableOfflineQueue: true,
    ...clientOptions,
    ...credentials(config),
    socket: { connectTimeout: REDIS_CONNECT_TIMEOUT_MS, ...socketDefaults, ...record(clientOptions.socket) },
  };
}

function standaloneConnections(config: RedisStoreConfig, withSubscriber: boolean, reconnect: boolean): RedisConnections {
  const options = nodeClientOptions(config, { reconnectStrategy: reconnect ? reconnectDelayMs : false });
  options.url = config.url;
  const client = createClient(options as RedisClientOptions);
  // node-redis v5 types every command with RESP generics; the narrow interface above has the same runtime shape.
  const command = client as unknown as RedisHandle;
  const subscriber = withSubscriber ? (client.duplicate() as unknown as RedisHandle) : undefined;
  const subscriberClient = subscriber as unknown as { isReady: boolean } | undefined;
  return {
    mode: 'standalone',
    command,
    subscriber,
    handles: subscriber ? [command, subscriber] : [command],
    isCommandReady: () => client.isReady,
    isSubscriberReady: () => subscriberClient?.isReady ?? false,
  };
}

/**
 * Sentinel: `sentinel` gives `name` and `sentinelRootNodes` and any other
 * option of createSentinel; `url` only decides TLS for the data nodes.
 * node-redis keeps its own reconnect handling for Sentinel nodes.
 */
function sentinelConnections(config: RedisStoreConfig, sentinel: Record<string, unknown>): RedisConnections {
  const tls = isTlsUrl(config.url) ? { tls: true } : {};
  const options: Record<string, unknown> = {
    ...sentinel,
    nodeClientOptions: { ...nodeClientOptions(config, tls), ...record(sentinel.nodeClientOptions) },
  };
  const client = createSentinel(options as unknown as RedisSentinelOptions);
  const handle = client as unknown as RedisHandle;
  return {
    mode: 'sentinel',
    command: handle,
    subscriber: handle,
    handles: [handle],
    isCommandReady: () => client.isReady,
    isSubscriberReady: () => client.isReady,
  };
}

/**
 * Cluster: `cluster` gives any option of createCluster; without `rootNodes`
 * the cluster is discovered from `url`. Credentials and `clientOptions` become
 * the `defaults` of every node client, and `rediss://` turns TLS on for nodes
 * found by discovery too.
 */
function clusterConnections(config: RedisStoreConfig, cluster: Record<string, unknown>): RedisConnections {
  const tls = isTlsUrl(config.url) ? { tls: true } : {};
  const options: Record<string, unknown> = {
    rootNodes: [{ url: config.url }],
    ...cluster,
    defaults: { ...nodeClientOptions(config, tls), ...record(cluster.defaults) },
  };
  const client = createCluster(options as unknown as RedisClusterOptions);
  const handle = client as unknown as RedisHandle;
  return {
    mode: 'cluster',
    command: handle,
    subscriber: handle,
    handles: [handle],
    // NOTE: a cluster object reports only whether it is open, not per-node readiness; the store's heartbeat covers the rest.
    isCommandReady: () => client.isOpen,
    isSubscriberReady: () => client.isOpen,
  };
}

/** A Redis command did not finish within its time limit. */
export class RedisTimeoutError extends Error {
  constructor(description: string, timeoutMs: number) {
    super(`${description} timed out after ${timeoutMs} ms`);
    this.name = 'RedisTimeoutError';
  }
}

/**
 * Settles with `promise`, or rejects with RedisTimeoutError after `timeoutMs`.
 * The command itself is not cancelled; its late reply is ignored.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, description: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RedisTimeoutError(description, timeoutMs)), timeoutMs);
    timer.unref();
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Closes every handle at once. Pending commands are rejected, which is safe
 * because callers await every write before they close.
 */
export async function closeConnections(connections: RedisConnections): Promise<void> {
  await Promise.all(
    connections.handles.map(async (handle) => {
      try {
        await handle.destroy();
      } catch {
        // Already closed: nothing left to release.
      }
    }),
  );
}
