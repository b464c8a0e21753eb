/**
 * Admin commands for the Redis store. Each takes the arguments after its
 * command word, the loaded configuration and the streams, and returns the
 * exit code.
 */
export { tenantCommand, TENANT_USAGE } from './tenant-command.js';
export { targetCommand, TARGET_USAGE } from './target-command.js';
export { importCommand, IMPORT_USAGE } from './import-command.js';
export { certCommand, CERT_USAGE } from './cert-command.js';
