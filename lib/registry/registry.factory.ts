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
 * tombstone filter.
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
  if (registry.all().length > 0 && orm.config.get('disableIdentityMap') === true) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_IDENTITY_MAP',
      { option: 'disableIdentityMap' },
      "MikroORM's disableIdentityMap is true, so the rows the module loads are tracked by no entity manager: a flush would not save a queued request's state (it would stay running forever) and removals of loaded rows could be missed.",
      'remove disableIdentityMap from your MikroORM configuration, and pass { disableIdentityMap: true } to the find() calls that need it.',
    );
  }
  installTombstoneFilter(orm, registry);
  return registry;
}

/**
 * One filter, {@link TOMBSTONE_FILTER}, on every entity in tombstone mode (single-table subclasses
 * of a tombstoned entity have their own policy, so they are listed too), hiding rows whose
 * tombstone property is set. Registered on the root entity manager: each fork copies its filters
 * when it is made, so every fork made after bootstrap (request contexts, the module's own forks)
 * has it, but one forked before this factory runs does not. An application turns it off by name
 * (`filters: { 'deletion:tombstone': false }`) or with `filters: false`, as the module's own queries do.
 */
function installTombstoneFilter(orm: MikroORM, registry: PolicyRegistry): void {
  const tombstoned = registry.all().filter((policy) => policy.tombstone !== undefined);
  if (tombstoned.length === 0) {
    return;
  }
  // MikroORM calls the condition with the class name of the entity queried; `entity` (matched by
  // class) limits it to these entities, looked up by class name as `PolicyRegistry.forEntityName()` does.
  const tombstoneOf = new Map(tombstoned.map((policy) => [policy.meta.className, policy.tombstone!]));
  orm.em.addFilter({
    name: TOMBSTONE_FILTER,
    entity: tombstoned.map((policy) => policy.meta.class),
    cond: (_args, _type, _em, _options, entityName) => {
      const property = entityName === undefined ? undefined : tombstoneOf.get(entityName);
      return property === undefined ? {} : { [property]: null };
    },
    args: false,
    default: true,
  });
}
