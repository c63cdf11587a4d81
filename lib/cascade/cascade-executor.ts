import type { EntityManager } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import { RequestWriter } from '../outbox/request-writer.js';
import { PolicyRegistry, type EntityPolicy, type RelationPolicy } from '../registry/policy-registry.js';
import { CascadeContext, type CascadeScope } from './cascade-context.js';
import { EntityRemover } from './entity-remover.js';
import { RelationQueries } from './relation-queries.js';
import type { DeletionGuard } from '../validation/validation-hoister.js';

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
  ) {}

  /**
   * Runs before the parents' own DELETE: `restrict` checks first (nothing is written if one
   * refuses), then each relation's policy in declaration order. Any error propagates and rolls the
   * caller's transaction back. `guard`: the deletion's validators, checked by the request's insert.
   */
  async applyPolicies(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[], guard?: DeletionGuard): Promise<void> {
    if (parentIds.length === 0) {
      return;
    }
    for (const relation of policy.relations.filter((r) => r.policy === 'restrict')) {
      await this.restrict(em, relation, parentIds);
    }
    if (this.registry.isRecursive(policy.meta)) {
      const keys = this.underWayIn(em);
      parentIds.forEach((id) => keys?.add(`${policy.meta.className}:${String(id)}`));
    }
    const outer = CascadeContext.currentRequest();
    const scope = this.requests.needsRequest(policy)
      ? await this.requests.write(em, policy, parentIds, outer, guard)
      : (outer ?? this.requests.lazyRoot(em, policy, parentIds));
    for (const relation of policy.relations) {
      await this.applyRelation(em, relation, parentIds, scope);
    }
  }

  /**
   * Whether the first statement `applyPolicies` runs for these rows is their request row's insert,
   * which can then carry the validators as its guard (no `restrict` count comes before it, so the
   * validators still answer first).
   */
  startsWithRequest(policy: EntityPolicy): boolean {
    return this.requests.needsRequest(policy) && !policy.relations.some((r) => r.policy === 'restrict');
  }

  private async applyRelation(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[], scope: CascadeScope): Promise<void> {
    const queries = new RelationQueries(relation);
    switch (relation.policy) {
      case 'deleteAll':
        await queries.deleteAll(em, parentIds);
        return;
      case 'nullify':
        await queries.nullify(em, parentIds);
        return;
      case 'destroy': {
        const keys = this.registry.isRecursive(relation.childMeta) ? this.underWayIn(em) : undefined;
        const skip = keys && ((key: unknown) => keys.has(`${relation.childMeta.className}:${String(key)}`));
        await CascadeContext.runInRequest({ ...scope, path: `${scope.path}.${relation.relation}` }, () =>
          queries.destroyPages(em, parentIds, relation.batchSize, (fork, rows) => this.remover.flush(fork, rows), skip),
        );
        return;
      }
      case 'nullifyThenPurge':
        await this.requests.nullifyAndRecord(em, relation, parentIds, scope.requestId);
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
    const count = await new RelationQueries(relation).count(em, parentIds);
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
