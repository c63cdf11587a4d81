import type { MikroORM } from '@mikro-orm/core';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DeletionOrphan } from '../outbox/deletion-orphan.entity.js';
import { DeletionRequest } from '../outbox/deletion-request.entity.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import { PolicyRegistry } from './policy-registry.js';
import { resolvePolicies } from './policy-resolver.js';

/** The filter that hides tombstoned rows from ordinary queries. */
export const TOMBSTONE_FILTER = 'deletion:tombstone';

/**
 * Builds the registry at bootstrap from the module's options and `@Dependent()` declarations,
 * checks that the module's own entities are registered when the queue is needed, and installs the
 * tombstone filters.
 */
export function createPolicyRegistry(orm: MikroORM, options: ResolvedDeletionOptions): PolicyRegistry {
  const registry = resolvePolicies({
    metadata: orm.getMetadata(),
    definitions: options.policies,
    defaultBatchSize: options.batchSize,
  });
  const queued = registry.all().some((p) => p.tombstone !== undefined || p.relations.some((r) => semanticsOf(r.policy).queued));
  const registered = orm.getMetadata().find(DeletionRequest) !== undefined && orm.getMetadata().find(DeletionOrphan) !== undefined;
  if (queued && !registered) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_ENTITIES_MISSING',
      { option: 'entities' },
      'queued policies (destroyAsync, deleteAllAsync, nullifyThenPurge, tombstone) store their requests in deletion_request and deletion_orphan, whose entities MikroORM does not know.',
      'add ...DELETION_ENTITIES to the `entities` of your MikroORM configuration.',
    );
  }
  if (registry.all().length > 0 && orm.config.get('implicitTransactions') === false) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_TRANSACTIONS',
      { option: 'implicitTransactions' },
      "MikroORM's implicitTransactions is false, so a flush runs its statements outside a transaction: a deletion's policies and request row could commit while its parent's DELETE fails.",
      'set implicitTransactions: true (the default on PostgreSQL) in your MikroORM configuration.',
    );
  }
  for (const policy of registry.all()) {
    if (policy.tombstone !== undefined) {
      policy.meta.filters[TOMBSTONE_FILTER] = { name: TOMBSTONE_FILTER, cond: { [policy.tombstone]: null }, default: true };
    }
  }
  return registry;
}
