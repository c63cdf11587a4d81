import { LockMode, QueryHelper, ReferenceKind, Utils, type EntityManager, type EntityMetadata, type FilterQuery } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { PolicyRegistry, type EntityPolicy } from '../registry/policy-registry.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { propertyOf } from '../sql/metadata.js';
import { TOMBSTONE_FILTER } from '../registry/registry.factory.js';
import { deleteRows, lockRowKeys, markRows } from '../sql/row-statements.js';
import { CascadeContext, type DestroyScope } from './cascade-context.js';
import { CascadeExecutor } from './cascade-executor.js';
import { DELETE_EVENTS, LOAD_EVENTS, OrmObservers, UPDATE_EVENTS } from './orm-observers.js';


/**
 * `destroy()` without a flush. A flush that removes one row does a great deal nobody sees when
 * nothing in the application observes that removal: it computes change sets, dispatches events to
 * every subscriber, snapshots the entity and writes the row's statement through the query builder.
 * When no entity hook and no application subscriber would run for the row's removal (its UPDATE in
 * tombstone mode), and the ORM would change no further row for it (no cascade, no orphan removal,
 * no pivot), the row is locked in `destroy()`'s transaction, checked and its policies applied
 * exactly as the subscriber would, and its own DELETE (or tombstone UPDATE) is one statement of the
 * module's.
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
   * Locks the row `key` of `policy`'s entity in `em`'s transaction as `findOne()` would find it (the
   * application's filters apply; a marked row is gone), checks it, applies the policies and removes
   * (or marks) it. The row is loaded as an entity only when something needs one (see
   * `needsEntity`); otherwise one `SELECT ... FOR UPDATE` of its key. Returns false when no row is found.
   */
  async destroy(em: EntityManager, policy: EntityPolicy, key: unknown, scope: DestroyScope): Promise<boolean> {
    const { meta } = policy;
    let ids: unknown[];
    let entities: object[] | undefined;
    if (await this.needsEntity(em, policy)) {
      const target = await em.findOne(meta.class as new () => object, key as FilterQuery<object>, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!target) {
        return false;
      }
      scope.locked = target;
      ids = [EntityKeys.of(meta).ofEntity(target)];
      entities = [target];
    } else {
      ids = await lockRowKeys(em, meta, [key], policy.tombstone);
      if (ids.length === 0) {
        return false;
      }
    }
    // The root request's record of the synchronous paths goes with the row's own statement.
    const also = await this.executor.applyChecked(em, policy, { meta, ids, ...(entities ? { entities } : {}) }, { deferSyncProgress: true });
    if (policy.tombstone === undefined) {
      await deleteRows(em, meta, ids, { also });
    } else {
      await markRows(em, meta, ids, policy.tombstone, new Date(), also);
    }
    // Nothing left for the flush that ends the transaction.
    em.clear();
    return true;
  }

  /**
   * Whether the row must be loaded as `findOne()` loads it: for its instance validators, for a
   * listener of its loading, for a formula it computes (which may fail), or because a filter other
   * than the module's tombstone filter would decide whether it is found: one on the entity itself,
   * or one on the target of a to-one relation, which `findOne()` joins (a row whose parent is hidden
   * is not found). MikroORM evaluates the filters, with their parameters, as for any query of `em`.
   */
  private async needsEntity(em: EntityManager, policy: EntityPolicy): Promise<boolean> {
    const { meta } = policy;
    if ((policy.validators?.methods.length ?? 0) > 0 || this.observers.observed(meta, LOAD_EVENTS) || meta.props.some((prop) => prop.formula !== undefined)) {
      return true;
    }
    try {
      if ((await em.applyFilters(meta.class, undefined, { [TOMBSTONE_FILTER]: false }, 'read')) !== undefined) {
        return true;
      }
      if (!em.config.get('autoJoinRefsForFilters')) {
        return false;
      }
      // As findOne() decides which relations to join for their filters (autoJoinRefsForFilters).
      for (const prop of meta.relations) {
        if (prop.object || (prop.kind !== ReferenceKind.MANY_TO_ONE && prop.kind !== ReferenceKind.ONE_TO_ONE)) {
          continue;
        }
        const targets = prop.polymorphic && prop.polymorphTargets?.length ? prop.polymorphTargets : [prop.targetMeta!];
        for (const target of targets) {
          if (!Utils.isEmpty(await em.applyFilters(target.class, {}, QueryHelper.mergePropertyFilters(prop.filters, undefined), 'read'))) {
            return true;
          }
        }
      }
      return false;
    } catch {
      // A filter that cannot be evaluated here (missing parameters): findOne() reports it.
      return true;
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
