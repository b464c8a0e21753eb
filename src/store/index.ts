import type { ServiceConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { MemoryStore } from './memory-store.js';
import type { TenantStore } from './store.js';
import { TokenDigester } from './token-digest.js';

export type { TenantStore, TenantSettings, TargetCredentials, StoreHealth } from './store.js';
export { StoreUnavailableError, tenantKey } from './store.js';
export { TokenDigester } from './token-digest.js';
export { MemoryStore } from './memory-store.js';

/** Builds the configured store; a Redis store is connected before this returns or throws. */
export async function createStore(config: ServiceConfig, digester: TokenDigester, logger: Logger): Promise<TenantStore> {
  if (config.store.type === 'memory') {
    return new MemoryStore(config.tenants, digester);
  }
  const { RedisStore } = await import('./redis-store.js');
  const store = new RedisStore(config.store.redis, config.cache, digester, logger);
  await store.connect();
  return store;
}
