import {
  Cascade,
  MikroORM,
  ChangeSet,
  ChangeSetType,
  EventType,
  helper,
  type EntityManager,
  type EntityMetadata,
  type EntityProperty,
  type EventSubscriber,
} from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { DELETION_SUBSCRIBER } from '../deletion.constants.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { deleteRows } from '../sql/row-statements.js';

const FLUSH_EVENTS = [EventType.beforeFlush, EventType.onFlush, EventType.afterFlush] as const;

/**
 * Removes pages of loaded children "through the ORM", as `destroy`, `destroyAsync` and the purge of
 * `nullifyThenPurge` promise: every `beforeDelete` and `afterDelete` hook and subscriber runs for
 * every row, with the same arguments a flush gives them.
 */
@Injectable()
export class EntityRemover {
  private readonly directByMeta = new WeakMap<EntityMetadata, boolean>();
  private ownSubscriber?: EventSubscriber;

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
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
   * Whether rows of `meta` can be removed without a flush: inside a transaction; an entity with no
   * policy of its own (those run, set-based, for the flush's whole group), a single-column primary
   * key, no inheritance, no ORM cascade or orphan removal reaching further rows; and no subscriber
   * of the application listening to flushes (it would expect to see these removals in one).
   */
  private direct(fork: EntityManager, meta: EntityMetadata): boolean {
    if (!fork.getTransactionContext() || this.hasFlushListeners()) {
      return false;
    }
    let direct = this.directByMeta.get(meta);
    if (direct === undefined) {
      direct =
        !this.registry.has(meta) &&
        meta.primaryKeys.length === 1 &&
        meta.root.class === meta.class &&
        !meta.discriminatorColumn &&
        !(meta.props as EntityProperty[]).some((prop) => prop.orphanRemoval || prop.cascade?.some((c) => c === Cascade.REMOVE || c === Cascade.ALL));
      this.directByMeta.set(meta, direct);
    }
    return direct;
  }

  /**
   * The application's subscribers are the ORM's global ones (a transaction's entity manager also
   * carries MikroORM's own handler that forgets deleted entities in the caller's context: the
   * module's transactions have no caller to tell).
   */
  private hasFlushListeners(): boolean {
    // By token: importing the subscriber's class here would make an import cycle through the executor.
    this.ownSubscriber ??= this.moduleRef.get<EventSubscriber>(DELETION_SUBSCRIBER, { strict: false });
    for (const subscriber of this.orm.em.getEventManager().getSubscribers()) {
      if (subscriber !== this.ownSubscriber && FLUSH_EVENTS.some((event) => event in subscriber)) {
        return true;
      }
    }
    return false;
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
