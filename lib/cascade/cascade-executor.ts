import type { EntityManager } from '@mikro-orm/core';
import { Injectable, Logger } from '@nestjs/common';
import { DeletionRestrictedError } from '../errors/deletion-restricted.error.js';
import type { EntityPolicy, RelationPolicy } from '../registry/policy-registry.js';
import { RelationQueries } from './relation-queries.js';

/**
 * Applies an entity's declared policies to a set of its rows that are about to be deleted, inside
 * the caller's transaction. Every statement is set-based over the whole set of parents, so a batch
 * of a thousand parents costs a few statements per relation, not a few thousand.
 */
@Injectable()
export class CascadeExecutor {
  private readonly logger = new Logger(CascadeExecutor.name);

  /**
   * Runs before the parents' own DELETE: `restrict` checks first (nothing is written if one
   * refuses), then each relation's policy in declaration order. Any error propagates and rolls the
   * caller's transaction back.
   */
  async applyPolicies(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[]): Promise<void> {
    if (parentIds.length === 0) {
      return;
    }
    for (const relation of policy.relations.filter((r) => r.policy === 'restrict')) {
      await this.restrict(em, relation, parentIds);
    }
    for (const relation of policy.relations) {
      await this.applyRelation(em, relation, parentIds);
    }
  }

  private async applyRelation(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[]): Promise<void> {
    const queries = new RelationQueries(relation);
    switch (relation.policy) {
      case 'restrict':
        return; // checked before anything was written
      case 'deleteAll':
        await queries.deleteAll(em, parentIds);
        return;
      case 'nullify':
        await queries.nullify(em, parentIds);
        return;
      case 'destroy':
        await this.destroyChildren(em, relation, queries, parentIds);
        return;
      default:
        throw new Error(`${relation.entity}.${relation.relation}: policy "${relation.policy}" has no synchronous executor.`);
    }
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

  /**
   * Loads the children one keyset page at a time and removes them through a fork of the ORM that
   * shares the transaction, so their lifecycle hooks and subscribers fire and their own policies
   * apply (this executor runs again for them). Memory holds one page, whatever the child count.
   */
  private async destroyChildren(em: EntityManager, relation: RelationPolicy, queries: RelationQueries, parentIds: readonly unknown[]): Promise<void> {
    const pk = relation.childMeta.primaryKeys[0]!;
    let cursor: unknown;
    let batches = 0;
    for (;;) {
      const fork = em.fork({ clear: true, keepTransactionContext: true });
      const page = await queries.page<Record<string, unknown>>(fork, parentIds, cursor, relation.batchSize);
      if (page.length === 0) {
        break;
      }
      batches++;
      for (const child of page) {
        fork.remove(child);
      }
      await fork.flush();
      cursor = page[page.length - 1]![pk];
      if (page.length < relation.batchSize) {
        break;
      }
    }
    this.logger.debug(`${relation.entity}.${relation.relation}: destroyed children in ${batches} batch(es)`);
  }
}
