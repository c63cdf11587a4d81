import { randomUUID } from 'node:crypto';
import type { EntityManager, EntityProperty } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { CascadeContext, type CascadeScope } from '../cascade/cascade-context.js';
import { fieldOf, qualifiedTable } from '../cascade/relation-queries.js';
import { isAsyncPolicy } from '../policies/policy-names.js';
import type { EntityPolicy, RelationPolicy } from '../registry/policy-registry.js';
import { DeletionOrphan } from './deletion-orphan.entity.js';
import { DeletionRequest, type RelationProgress } from './deletion-request.entity.js';
import { OutboxPublisher } from './outbox-publisher.js';
import type { DeletionGuard } from '../validation/validation-hoister.js';

/**
 * Writes deletion requests in the transaction of the delete that causes them, and hands their ids
 * to the {@link OutboxPublisher}, which enqueues them once that transaction has committed.
 */
@Injectable()
export class RequestWriter {
  constructor(@Inject(OutboxPublisher) private readonly publisher: OutboxPublisher) {}

  /** Whether deleting rows of this entity leaves work for the queue. */
  needsRequest(policy: EntityPolicy): boolean {
    return policy.tombstone !== undefined || policy.relations.some((r) => isAsyncPolicy(r.policy));
  }

  /**
   * Writes the request for `parentIds` under the current cascade scope (a child request), or as a
   * new root when there is none; returns the scope nested work of these rows attaches to.
   */
  async write(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[], scope: CascadeScope | undefined, guard?: DeletionGuard): Promise<CascadeScope> {
    const id = randomUUID();
    const parent = scope;
    if (parent) {
      await parent.ensureWritten();
    }
    const rootId = parent?.rootId ?? id;
    const path = parent?.path ?? policy.meta.className;
    await this.insert(em, {
      id,
      rootId,
      parentId: parent?.requestId ?? null,
      entity: policy.meta.className,
      parentIds: [...parentIds],
      path,
      progress: initialProgress(policy.relations),
      ownWorkDone: false,
      tombstone: policy.tombstone !== undefined,
    }, guard);
    return { requestId: id, rootId, path, ensureWritten: async () => {} };
  }

  /**
   * A root scope for a top-level deletion whose own rows need no request, but whose synchronously
   * destroyed descendants might: its request row is written only if one of them does.
   */
  lazyRoot(em: EntityManager, policy: EntityPolicy, parentIds: readonly unknown[]): CascadeScope {
    const id = randomUUID();
    let written: Promise<void> | undefined;
    return {
      requestId: id,
      rootId: id,
      path: policy.meta.className,
      ensureWritten: () =>
        (written ??= this.insert(em, {
          id,
          rootId: id,
          parentId: null,
          entity: policy.meta.className,
          parentIds: [...parentIds],
          path: policy.meta.className,
          progress: {},
          ownWorkDone: true,
          tombstone: false,
        })),
    };
  }

  /**
   * The sweeper's request: walk `relation` for parents that no longer exist (their children were
   * left behind), as a root request of its own.
   */
  async writeSweep(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[]): Promise<string> {
    const id = randomUUID();
    await this.insert(em, {
      id,
      rootId: id,
      parentId: null,
      entity: relation.entity,
      parentIds: [...parentIds],
      path: relation.entity,
      progress: initialProgress([relation]),
      ownWorkDone: false,
      tombstone: false,
      origin: 'sweeper',
    });
    return id;
  }

  private statement?: { columns: string; properties: { name: string; toDatabase?: (value: unknown) => unknown }[] };

  /** `insert into deletion_request (...)`, and how each value is converted, from the metadata. */
  private insertStatement(em: EntityManager): NonNullable<RequestWriter['statement']> {
    if (!this.statement) {
      const meta = em.getMetadata().get(DeletionRequest);
      const platform = em.getPlatform();
      const names = ['id', 'rootId', 'parentId', 'entity', 'parentIds', 'path', 'progress', 'ownWorkDone', 'tombstone', 'state', 'attempts', 'origin'];
      const properties = names.map((name) => {
        const { customType } = meta.properties[name as never] as EntityProperty;
        return { name, toDatabase: customType && ((value: unknown) => customType.convertToDatabaseValue(value, platform, { mode: 'query' })) };
      });
      const columns = names.map((name) => platform.quoteIdentifier(fieldOf(meta.properties[name as never]))).join(', ');
      this.statement = { columns: `insert into ${qualifiedTable(em, meta.tableName, meta.schema)} (${columns})`, properties };
    }
    return this.statement;
  }

  /**
   * Inserts the request row and hands it to the publisher. With a `guard`, the row is inserted only
   * where the guard's condition holds; a refused insert runs the full checks, which throw with the
   * blockers (should they find none, the rows changed in between, and the row is inserted as is).
   */
  private async insert(
    em: EntityManager,
    data: Pick<DeletionRequest, 'id' | 'rootId' | 'parentId' | 'entity' | 'parentIds' | 'path' | 'progress' | 'ownWorkDone' | 'tombstone'> &
      Partial<Pick<DeletionRequest, 'origin'>>,
    guard?: DeletionGuard,
  ): Promise<void> {
    const row: Record<string, unknown> = { origin: 'deletion', ...data, state: 'pending', attempts: 0 };
    const { columns, properties } = this.insertStatement(em);
    // Plain SQL, built once from the entity's metadata: this insert is on every deletion's request path.
    const values = properties.map((p) => (p.toDatabase ? p.toDatabase(row[p.name]) : row[p.name]));
    const placeholders = values.map(() => '?').join(', ');
    const execute = (sql: string, params: unknown[]) =>
      em.getConnection().execute<{ affectedRows: number }>(sql, params, 'run', em.getTransactionContext());
    const inserted = guard
      ? (await execute(`${columns} select ${placeholders} where ${guard.sql}`, [...values, ...guard.params])).affectedRows
      : 0;
    if (inserted === 0) {
      await guard?.refused();
      await execute(`${columns} values (${placeholders})`, values);
    }
    this.publisher.afterCommit(em, data.id);
    if (!data.parentId) {
      CascadeContext.currentDestroy()?.rootRequestIds.push(data.id);
    }
  }

  /**
   * `nullifyThenPurge`: detaches the children and records exactly which rows were detached, in one
   * statement (`UPDATE ... RETURNING` feeding an `INSERT`), so the purge never touches rows whose
   * foreign key was already NULL.
   */
  async nullifyAndRecord(em: EntityManager, relation: RelationPolicy, parentIds: readonly unknown[], requestId: string): Promise<number> {
    const q = (name: string) => em.getPlatform().quoteIdentifier(name);
    const child = relation.childMeta;
    const fk = q(fieldOf(child.properties[relation.childProperty as never]));
    const pk = q(fieldOf(child.properties[child.primaryKeys[0] as never]));
    const orphanMeta = em.getMetadata().get(DeletionOrphan);
    const column = (prop: string) => q(fieldOf(orphanMeta.properties[prop as never]));
    const sql =
      `with detached as (update ${qualifiedTable(em, child.tableName, child.schema)} set ${fk} = null ` +
      `where ${fk} in (${parentIds.map(() => '?').join(', ')}) returning ${pk} as row_id) ` +
      `insert into ${qualifiedTable(em, orphanMeta.tableName, orphanMeta.schema)} (${column('requestId')}, ${column('relation')}, ${column('rowId')}) ` +
      `select ?, ?, row_id::text from detached`;
    const result = await em.getConnection().execute<{ affectedRows: number }>(sql, [...parentIds, requestId, relation.relation], 'run', em.getTransactionContext());
    return result.affectedRows;
  }
}

function initialProgress(relations: readonly RelationPolicy[]): Record<string, RelationProgress> {
  const progress: Record<string, RelationProgress> = {};
  for (const relation of relations.filter((r) => isAsyncPolicy(r.policy))) {
    progress[relation.relation] = { policy: relation.policy, childEntity: relation.childMeta.className, cursor: null, processed: 0, done: false };
  }
  return progress;
}
