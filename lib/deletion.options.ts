import { DeletionConfigurationError } from './errors/deletion-configuration.error.js';
import type { DeletionModuleOptions, ResolvedDeletionOptions } from './interfaces/deletion-module-options.interface.js';

export const DEFAULT_BATCH_SIZE = 1000;

/** Applies defaults and rejects invalid module options, naming the option and the fix. */
export function resolveOptions(options: DeletionModuleOptions): ResolvedDeletionOptions {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_INVALID_OPTION',
      { option: 'batchSize' },
      `batchSize ${String(options.batchSize)} is not a positive integer.`,
      'pass a batchSize of 1 or more (default 1000).',
    );
  }
  return Object.freeze({ ...options, batchSize });
}
