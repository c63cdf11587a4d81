import { LockMode, type EntityManager, type FilterQuery } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { EntityRemover } from '../cascade/entity-remover.js';
import { DeletionOrphan } from '../outbox/deletion-orphan.entity.js';
import type { DeletionRequest, RelationProgress } from '../outbox/deletion-request.entity.js';
import { PolicyRegistry, type RelationPolicy } from '../registry/policy-registry.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { RelationStatements } from '../sql/relation-statements.js';
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
    const statements = new RelationStatements(relation);
    const size = relation.batchSize;
    const path = `${request.path}.${relation.relation}`;
    const parents = EntityKeys.of(relation.parentMeta);
    const parentIds = request.parentIds.map((id) => parents.fromJson(id));
    const children = EntityKeys.of(relation.childMeta);
    switch (relation.policy) {
      case 'destroyAsync': {
        const fork = em.fork({ clear: true, keepTransactionContext: true });
        const cursor = progress.cursor === null || progress.cursor === undefined ? undefined : children.fromJson(progress.cursor);
        const page = await statements.page<Record<string, unknown>>(fork, parentIds, cursor, size);
        await this.hoister.assertDeletable(fork, { meta: relation.childMeta, ids: page.map((row) => children.ofEntity(row)), entities: page, path });
        const count = await this.remover.removeQueued(fork, page);
        const last = page.at(-1);
        return { count, cursor: last === undefined ? progress.cursor : children.toJson(children.ofEntity(last)), done: page.length < size };
      }
      case 'deleteAllAsync': {
        // Keyset batches, as destroyAsync's: each starts after the last key the previous one chose,
        // kept as the key's text (compared in SQL as the column's type).
        const after = progress.cursor === null || progress.cursor === undefined ? undefined : String(progress.cursor);
        const cursorAt = (last: string | undefined) => last ?? progress.cursor;
        if (this.registry.hasValidators(relation.childMeta)) {
          const checks = this.hoister.ownRowChecks(em, relation.childMeta);
          if (checks) {
            const batch = await statements.deleteCheckedBatch(em, parentIds, size, checks, after);
            if (batch.blocked === 0) {
              return { count: batch.deleted, cursor: cursorAt(batch.last), done: batch.batch < size };
            }
            // Refused: nothing was deleted; the full checks below name the blockers, and throw.
          }
          // Exactly the rows the validators pass are deleted, and only while they still belong here.
          const { keys, last } = await statements.nextKeys(em, parentIds, size, after);
          await this.hoister.assertDeletable(em, { meta: relation.childMeta, ids: keys, path }, { descend: false });
          const count = await statements.deleteKeys(em, parentIds, keys);
          return { count, cursor: cursorAt(last), done: keys.length < size };
        }
        const batch = await statements.deleteNextBatch(em, parentIds, size, after);
        return { count: batch.deleted, cursor: cursorAt(batch.last), done: batch.batch < size };
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
    const orphans = await em.find(DeletionOrphan, { requestId: request.id, relation: relation.relation, ...after }, { orderBy: { id: 'asc' }, limit: size });
    if (orphans.length === 0) {
      return { count: 0, cursor: progress.cursor, done: true };
    }
    const child = relation.childMeta;
    const keys = EntityKeys.of(child);
    const pk = child.primaryKeys[0]!;
    const fork = em.fork({ clear: true, keepTransactionContext: true });
    const rows = await fork.find(
      child.class,
      { [pk]: { $in: orphans.map((o) => keys.fromJson(o.rowId)) }, [relation.childProperty]: null } as FilterQuery<object>,
      // Locked: a row re-attached to a parent meanwhile is no longer an orphan of this request.
      { filters: false, lockMode: LockMode.PESSIMISTIC_WRITE },
    );
    const path = `${request.path}.${relation.relation}`;
    await this.hoister.assertDeletable(fork, { meta: child, ids: rows.map((row) => keys.ofEntity(row)), entities: rows, path });
    const count = await this.remover.removeQueued(fork, rows);
    const last = orphans.at(-1)!.id;
    await em.nativeDelete(DeletionOrphan, { requestId: request.id, relation: relation.relation, id: { $lte: last } });
    return { count, cursor: last, done: orphans.length < size };
  }
}
