/**
 * The `@nestjs/terminus` part of the library, on its own entry point so that applications without
 * Terminus never load it (intended as the package's `./health` export).
 */
export { DeletionHealthModule } from './deletion-health.module.js';
export { DeletionHealthIndicator } from './deletion.health.js';
export type { DeletionHealthDetails, DeletionQueueCounts, DeletionRequestCounts } from './deletion-health.evaluate.js';
