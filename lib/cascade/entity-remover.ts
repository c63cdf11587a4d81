import { ChangeSet, ChangeSetType, EventType, helper, type EntityManager, type EntityMetadata } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { deleteRows } from '../sql/row-statements.js';
import { DELETE_EVENTS, LOAD_EVENTS, OrmObservers } from './orm-observers.js';

/** What loading and removing a row through the ORM would dispatch for it. */
const LOAD_AND_DELETE_EVENTS = [...LOAD_EVENTS, ...DELETE_EVENTS];

/**
 * Removes pages of loaded children "through the ORM", as `destroy`, `destroyAsync` and the purge of
 * `nullifyThenPurge` promise: every `beforeDelete` and `afterDelete` hook and subscriber runs for
 * every row, with the same arguments a flush gives them.
 */
@Injectable()
export class EntityRemover {
  private readonly directByMeta = new WeakMap<EntityMetadata, boolean>();

  constructor(
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(OrmObservers) private readonly observers: OrmObservers,
  ) {}

  /** `em.remove()` for each and a flush of `fork`: everything a flush does. Returns how many. */
  async flush(fork: EntityManager, entities: readonly object[]): Promise<number> {
    if (entities.length === 0) {
      return 0;
    }
    for (const entity of entities) {
      fork.remove(entity);
    }
    await fork.flush();
    return entities.length;
  }

  /**
   * Removes a page for the queue, in a transaction of the module's own (so no caller's entity
   * manager waits to see these removals). A flush of N removals also diffs every managed entity,
   * snapshots each one around its hooks and deletes in chunks of the ORM's `batchSize`: most of a
   * queued cascade's time, for nothing the hooks can see. When a flush would do no more than that
   * for these rows, the page is removed directly: the hooks are dispatched through MikroORM's own
   * event manager, and the rows go in one `DELETE ... WHERE pk IN (...)` on the same transaction.
   * Otherwise (see `direct()`) it flushes.
   */
  async removeQueued(fork: EntityManager, entities: readonly object[]): Promise<number> {
    if (entities.length === 0) {
      return 0;
    }
    const meta = helper(entities[0]!).__meta as EntityMetadata;
    if (!this.direct(fork, meta)) {
      return this.flush(fork, entities);
    }
    const events = fork.getEventManager();
    const changeSets = entities.map((entity) => new ChangeSet(entity, ChangeSetType.DELETE, {}, meta));
    if (events.hasListeners(EventType.beforeDelete, meta)) {
      for (const changeSet of changeSets) {
        await events.dispatchEvent(EventType.beforeDelete, { entity: changeSet.entity, meta, em: fork, changeSet });
      }
    }
    await this.deleteRows(fork, meta, changeSets);
    const uow = fork.getUnitOfWork(false);
    for (const entity of entities) {
      uow.unsetIdentity(entity);
    }
    if (events.hasListeners(EventType.afterDelete, meta)) {
      for (const changeSet of changeSets) {
        await events.dispatchEvent(EventType.afterDelete, { entity: changeSet.entity, meta, em: fork, changeSet });
      }
    }
    return entities.length;
  }

  /**
   * Whether loading and removing rows of `meta` through the ORM would run nothing but their DELETE:
   * removable without a flush (see `direct()`) and observed by no entity hook or application
   * subscriber (of their loading either: `onInit`, `onLoad`). The children of a `destroy` relation
   * are then deleted with one set-based statement, as `deleteAll`.
   */
  unobserved(fork: EntityManager, meta: EntityMetadata): boolean {
    return this.direct(fork, meta) && !this.observers.observed(meta, LOAD_AND_DELETE_EVENTS);
  }

  /**
   * Whether rows of `meta` can be removed without a flush: inside a transaction; an entity with no
   * policy of its own (those run, set-based, for the flush's whole group), a single-column primary
   * key, no inheritance, no ORM cascade or orphan removal reaching further rows; and no subscriber
   * of the application listening to flushes (it would expect to see these removals in one).
   */
  private direct(fork: EntityManager, meta: EntityMetadata): boolean {
    if (!fork.getTransactionContext() || this.observers.hasFlushListeners()) {
      return false;
    }
    let direct = this.directByMeta.get(meta);
    if (direct === undefined) {
      direct = !this.registry.has(meta) && meta.primaryKeys.length === 1 && meta.root.class === meta.class && !meta.discriminatorColumn && !this.observers.cascadesFurther(meta);
      this.directByMeta.set(meta, direct);
    }
    return direct;
  }

  /** One statement per schema for the page, on the fork's transaction. */
  private async deleteRows(fork: EntityManager, meta: EntityMetadata, changeSets: readonly ChangeSet<object>[]): Promise<void> {
    const bySchema = new Map<string | undefined, unknown[]>();
    for (const changeSet of changeSets) {
      const keys = bySchema.get(changeSet.schema) ?? [];
      keys.push(changeSet.getPrimaryKey());
      bySchema.set(changeSet.schema, keys);
    }
    for (const [schema, keys] of bySchema) {
      await deleteRows(fork, meta, keys, { schema });
    }
  }
}
