import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { EntityRemover } from '../cascade/entity-remover.js';
import { RelationQueries } from '../cascade/relation-queries.js';
import { DeletionOrphan } from '../outbox/deletion-orphan.entity.js';
import type { DeletionRequest, RelationProgress } from '../outbox/deletion-request.entity.js';
import { PolicyRegistry, type RelationPolicy } from '../registry/policy-registry.js';
import { ValidationHoister } from '../validation/validation-hoister.js';

/** What one batch did: rows handled, the new keyset cursor, and whether the relation is done. */
export interface BatchResult {
  count: number;
  cursor: unknown;
  done: boolean;
}

/**
 * One bounded batch of a queued policy, run inside the caller's transaction (which also stores the
 * cursor). Re-running a batch after a crash is harmless: rows already gone are not found again.
 */
@Injectable()
export class CascadeBatches {
  constructor(
    @Inject(ValidationHoister) private readonly hoister: ValidationHoister,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(EntityRemover) private readonly remover: EntityRemover,
  ) {}

  /**
   * Validators run again on every batch (state may have changed since the request): a refusal
   * throws `DeletionBlockedError` before the batch deletes anything.
   */
  async run(em: EntityManager, relation: RelationPolicy, request: DeletionRequest, progress: RelationProgress): Promise<BatchResult> {
    const queries = new RelationQueries(relation);
    const size = relation.batchSize;
    const path = `${request.path}.${relation.relation}`;
    const pk = relation.childMeta.primaryKeys[0]!;
    switch (relation.policy) {
      case 'destroyAsync': {
        const fork = em.fork({ clear: true, keepTransactionContext: true });
        const page = await queries.page<Record<string, unknown>>(fork, request.parentIds, progress.cursor, size);
        await this.hoister.assertDeletable(fork, { meta: relation.childMeta, ids: page.map((row) => row[pk]), entities: page, path });
        const count = await this.remover.removeQueued(fork, page);
        return { count, cursor: jsonKey(page.at(-1)?.[pk] ?? progress.cursor), done: count < size };
      }
      case 'deleteAllAsync': {
        if (this.registry.hasValidators(relation.childMeta)) {
          const ids = await queries.nextKeys(em, request.parentIds, size);
          await this.hoister.assertDeletable(em, { meta: relation.childMeta, ids, path }, { descend: false });
        }
        const count = await queries.deleteBatch(em, request.parentIds, size);
        return { count, cursor: null, done: count < size };
      }
      case 'nullifyThenPurge':
        return this.purgeOrphans(em, relation, request, progress, size);
      default:
        throw new Error(`${relation.entity}.${relation.relation}: "${relation.policy}" is not a queued policy.`);
    }
  }

  /** Destroys the next page of rows this request detached, and only those still detached. */
  private async purgeOrphans(em: EntityManager, relation: RelationPolicy, request: DeletionRequest, progress: RelationProgress, size: number): Promise<BatchResult> {
    const after = progress.cursor === null || progress.cursor === undefined ? {} : { id: { $gt: progress.cursor as string } };
    const orphans = await em.find(
      DeletionOrphan,
      { requestId: request.id, relation: relation.relation, ...after },
      { orderBy: { id: 'asc' }, limit: size },
    );
    if (orphans.length === 0) {
      return { count: 0, cursor: progress.cursor, done: true };
    }
    const child = relation.childMeta;
    const fork = em.fork({ clear: true, keepTransactionContext: true });
    const rows = await fork.find(
      child.class,
      { [child.primaryKeys[0]!]: { $in: orphans.map((o) => o.rowId) }, [relation.childProperty]: null } as FilterQuery<object>,
      { filters: false },
    );
    const pk = child.primaryKeys[0]!;
    const path = `${request.path}.${relation.relation}`;
    await this.hoister.assertDeletable(fork, { meta: child, ids: rows.map((row) => (row as Record<string, unknown>)[pk]), entities: rows, path });
    const count = await this.remover.removeQueued(fork, rows);
    const last = orphans.at(-1)!.id;
    await em.nativeDelete(DeletionOrphan, { requestId: request.id, relation: relation.relation, id: { $lte: last } });
    return { count, cursor: last, done: orphans.length < size };
  }
}

/** Keys are stored in the request's JSON progress: a bigint key is kept as its decimal string. */
function jsonKey(key: unknown): unknown {
  return typeof key === 'bigint' ? key.toString() : key;
}
