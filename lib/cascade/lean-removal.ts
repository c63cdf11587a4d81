import { EventType, type EntityManager, type EntityMetadata } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { PolicyRegistry, type EntityPolicy } from '../registry/policy-registry.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { propertyOf } from '../sql/metadata.js';
import { deleteRows, markRows } from '../sql/row-statements.js';
import { CascadeContext } from './cascade-context.js';
import { CascadeExecutor } from './cascade-executor.js';
import { OrmObservers } from './orm-observers.js';

const DELETE_EVENTS = [EventType.beforeDelete, EventType.afterDelete] as const;
const UPDATE_EVENTS = [EventType.beforeUpdate, EventType.afterUpdate] as const;

/**
 * `destroy()` without a flush. A flush that removes one row does a great deal nobody sees when
 * nothing in the application observes that removal: it computes change sets, dispatches events to
 * every subscriber, snapshots the entity and writes the row's statement through the query builder.
 * When no entity hook and no application subscriber would run for the row's removal (its UPDATE in
 * tombstone mode), and the ORM would change no further row for it (no cascade, no orphan removal,
 * no pivot), the row locked by `destroy()` is checked and its policies applied exactly as the
 * subscriber would, and its own DELETE (or tombstone UPDATE) is one statement of the module's.
 *
 * What depends on metadata is decided once per entity; subscribers are asked at each call. Anything
 * else (inheritance, a composite key, a tombstone that is not a date, a version or `onUpdate`
 * property a flush would write with the tombstone) keeps the flush.
 */
@Injectable()
export class LeanRemoval {
  private readonly shapeByMeta = new WeakMap<EntityMetadata, boolean>();

  constructor(
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(OrmObservers) private readonly observers: OrmObservers,
    @Inject(CascadeExecutor) private readonly executor: CascadeExecutor,
  ) {}

  /** The policy `destroy()` can apply to a row of `meta` without a flush, if it can. */
  policyFor(meta: EntityMetadata): EntityPolicy | undefined {
    if (CascadeContext.currentRequest()) {
      return undefined;
    }
    const policy = this.registry.forMeta(meta);
    if (!policy || !this.leanShape(policy)) {
      return undefined;
    }
    return this.observers.observed(meta, policy.tombstone === undefined ? DELETE_EVENTS : UPDATE_EVENTS) ? undefined : policy;
  }

  /**
   * Checks, applies the policies and removes (or marks) `target`, a row of `policy`'s entity that
   * the caller loaded under a row lock in `em`'s transaction.
   */
  async remove(em: EntityManager, policy: EntityPolicy, target: object): Promise<void> {
    const ids = [EntityKeys.of(policy.meta).ofEntity(target)];
    // The root request's record of the synchronous paths goes with the row's own statement.
    const also = await this.executor.applyChecked(em, policy, { meta: policy.meta, ids, entities: [target] }, { deferSyncProgress: true });
    if (policy.tombstone === undefined) {
      await deleteRows(em, policy.meta, ids, { also });
    } else {
      await markRows(em, policy.meta, ids, policy.tombstone, new Date(), also);
    }
  }

  private leanShape(policy: EntityPolicy): boolean {
    const { meta } = policy;
    let lean = this.shapeByMeta.get(meta);
    if (lean === undefined) {
      lean =
        meta.primaryKeys.length === 1 &&
        meta.root.class === meta.class &&
        !meta.discriminatorColumn &&
        !this.observers.cascadesFurther(meta) &&
        !this.observers.ownsPivot(meta) &&
        (policy.tombstone === undefined || this.plainTombstone(meta, policy.tombstone));
      this.shapeByMeta.set(meta, lean);
    }
    return lean;
  }

  /**
   * A tombstone the module can write as the flush would: a date, and no other column the flush's
   * UPDATE would write with it (a version, an `onUpdate` value) or compare (a concurrency check).
   */
  private plainTombstone(meta: EntityMetadata, tombstone: string): boolean {
    const prop = propertyOf(meta, tombstone);
    return (
      prop?.runtimeType === 'Date' &&
      !meta.versionProperty &&
      meta.concurrencyCheckKeys.size === 0 &&
      !meta.props.some((p) => p.onUpdate !== undefined)
    );
  }
}
