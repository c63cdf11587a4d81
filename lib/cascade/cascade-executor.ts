import type { EntityManager, EntityMetadata } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import { RequestWriter } from '../outbox/request-writer.js';
import { PolicyRegistry, type EntityPolicy, type RelationPolicy } from '../registry/policy-registry.js';
import { CascadeContext, type CascadeScope } from './cascade-context.js';
import { EntityRemover } from './entity-remover.js';
import { RelationStatements } from '../sql/relation-statements.js';
import { DeletionOrphan } from '../outbox/deletion-orphan.entity.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import { EntityKeys } from '../sql/entity-keys.js';
import type { SqlFragment } from '../sql/rows-under.js';
import { ValidationHoister, type DeletionGuard, type DeletionRoots } from '../validation/validation-hoister.js';

/**
 * Applies an entity's declared policies to a set of its rows that are about to be deleted, inside
 * the caller's transaction. Every statement is set-based over the whole set of parents, so a batch
 * of a thousand parents costs a few statements per relation, not a few thousand. Async policies
 * leave a durable request (and, for `nullifyThenPurge`, the list of rows it detached).
 */
@Injectable()
export class CascadeExecutor {
  /**
   * Per transaction, the rows of recursive entities (see `PolicyRegistry.isRecursive`) whose
   * deletion is under way: a cycle in the data (a category that is its own ancestor) leads back to
   * them, and they are not walked again.
   */
  private readonly underWay = new WeakMap<object, Set<string>>();

  constructor(
    @Inject(RequestWriter) private readonly requests: RequestWriter,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(EntityRemover) private readonly remover: EntityRemover,
    @Inject(ValidationHoister) private readonly hoister: ValidationHoister,
  ) {}

  /**
   * A deletion's entry point (rows not reached through another cascade, already locked): runs every
   * validator of the rows it would delete, at any depth, before anything is written (up front, or
   * as the condition of the request row's insert, the deletion's first write), then the policies.
   */
  async applyChecked(em: EntityManager, policy: EntityPolicy, roots: DeletionRoots, options: ApplyOptions = {}): Promise<SqlFragment | undefined> {
    // A deletion that writes a request row checks as part of that insert (one round trip fewer).
    const guard = this.startsWithRequest(policy) ? await this.hoister.guard(em, roots) : undefined;
    if (!guard) {
      await this.hoister.assertDeletable(em, roots);
    }
    return this.applyPolicies(em, policy, roots.ids, guard, options);
  }

  /**
   * Runs before the parents' own DELETE: `restrict` checks first (nothing is written if one
   * refuses), then each relation's policy in declaration order. Any error propagates and rolls the
   * caller's transaction back. `guard`: the deletion's validators, checked by the request's insert.
   */
  async applyPolicies(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[], guard?: DeletionGuard, options: ApplyOptions = {}): Promise<SqlFragment | undefined> {
    if (parentIds.length === 0) {
      return undefined;
    }
    for (const relation of policy.relations.filter((r) => semanticsOf(r.policy).refuses)) {
      await this.restrict(em, relation, parentIds);
    }
    if (this.registry.isRecursive(policy.meta)) {
      const keys = this.underWayIn(em);
      parentIds.forEach((id) => keys?.add(underWayKey(policy.meta, id)));
    }
    const outer = CascadeContext.currentRequest();
    const written = this.requests.needsRequest(policy)
      ? await this.requests.write(em, policy, parentIds, outer, guard)
      : (outer ?? this.requests.lazyRoot(em, policy, parentIds));
    // A top-level deletion counts the synchronous policies it runs, for its root request's status.
    const synced = new Map<string, { relation: RelationPolicy; count: number }>();
    const scope: CascadeScope = outer
      ? written
      : {
          ...written,
          recordSync: (path, relation, count) => {
            const key = path.slice(written.path.length + 1);
            synced.set(key, { relation, count: (synced.get(key)?.count ?? 0) + count });
          },
        };
    for (const relation of policy.relations) {
      await this.applyRelation(em, relation, parentIds, scope);
    }
    if (synced.size === 0 || !(written.isWritten?.() ?? true)) {
      return undefined;
    }
    if (options.deferSyncProgress) {
      return this.requests.recordSyncStatement(em, written.requestId, synced);
    }
    await this.requests.recordSync(em, written.requestId, synced);
    return undefined;
  }

  /**
   * Tombstone mode, before the marked rows are hard-deleted: children added under them since the
   * request (a row inserted with their key) would make that DELETE fail on a foreign key. The
   * synchronous policies apply to them now, as they did in the request (`restrict` refuses); the
   * queued ones were walked again by the queue (see `RequestRunner`).
   */
  async applyToLateChildren(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[], scope: CascadeScope): Promise<void> {
    for (const relation of policy.relations.filter((r) => !semanticsOf(r.policy).queued)) {
      if (semanticsOf(relation.policy).refuses) {
        await this.restrict(em, relation, parentIds);
      } else {
        await this.applyRelation(em, relation, parentIds, scope);
      }
    }
  }

  /**
   * Whether the first statement `applyPolicies` runs for these rows is their request row's insert,
   * which can then carry the validators as its guard (no `restrict` count comes before it, so the
   * validators still answer first).
   */
  private startsWithRequest(policy: EntityPolicy): boolean {
    return this.requests.needsRequest(policy) && !policy.relations.some((r) => semanticsOf(r.policy).refuses);
  }

  private async applyRelation(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[], scope: CascadeScope): Promise<void> {
    const queries = new RelationStatements(relation);
    switch (relation.policy) {
      case 'deleteAll': {
        const deleted = await queries.deleteAll(em, parentIds);
        scope.recordSync?.(`${scope.path}.${relation.relation}`, relation, deleted);
        return;
      }
      case 'nullify': {
        const detached = await queries.nullify(em, parentIds);
        scope.recordSync?.(`${scope.path}.${relation.relation}`, relation, detached);
        return;
      }
      case 'destroy': {
        if (this.remover.unobserved(em, relation.childMeta)) {
          // Nothing would see the children go one by one: one statement, as for `deleteAll`.
          const deleted = await queries.deleteAll(em, parentIds);
          scope.recordSync?.(`${scope.path}.${relation.relation}`, relation, deleted);
          return;
        }
        const keys = this.registry.isRecursive(relation.childMeta) ? this.underWayIn(em) : undefined;
        const skip = keys && ((key: unknown) => keys.has(underWayKey(relation.childMeta, key)));
        const path = `${scope.path}.${relation.relation}`;
        const destroyed = await CascadeContext.runInRequest({ ...scope, path, destroying: relation }, () =>
          queries.destroyPages(em, parentIds, relation.batchSize, (fork, rows) => this.remover.flush(fork, rows), skip),
        );
        scope.recordSync?.(path, relation, destroyed);
        return;
      }
      case 'nullifyThenPurge':
        await queries.nullifyAndRecord(em, parentIds, em.getMetadata().get(DeletionOrphan), scope.requestId);
        return;
      case 'restrict': // checked before anything was written
      case 'destroyAsync': // the request row written above carries them to the queue
      case 'deleteAllAsync':
        return;
    }
  }

  private underWayIn(em: EntityManager): Set<string> | undefined {
    const ctx = em.getTransactionContext() as object | undefined;
    if (!ctx) {
      return undefined;
    }
    let keys = this.underWay.get(ctx);
    if (!keys) {
      keys = new Set();
      this.underWay.set(ctx, keys);
    }
    return keys;
  }

  private async restrict(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[]): Promise<void> {
    const count = await new RelationStatements(relation).count(em, parentIds);
    if (count > 0) {
      throw DeletionRestrictedError.create({
        entity: relation.entity,
        id: parentIds.length === 1 ? parentIds[0] : [...parentIds],
        relation: relation.relation,
        childEntity: relation.childMeta.className,
        count,
      });
    }
  }
}

/** Options of `applyPolicies`. */
export interface ApplyOptions {
  /**
   * Return the statement that records the synchronous paths on the root request (see
   * `RequestWriter.recordSync`) instead of running it: the caller runs it with its own next one.
   */
  deferSyncProgress?: boolean;
}

/** A row of a recursive entity, by its inheritance root (a cycle may come back as another subclass). */
function underWayKey(meta: EntityMetadata, key: unknown): string {
  return `${meta.root.className}:${JSON.stringify(EntityKeys.of(meta).toJson(key))}`;
}
