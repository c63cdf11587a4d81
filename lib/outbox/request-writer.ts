import { randomUUID } from 'node:crypto';
import type { EntityManager, EntityMetadata } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { CascadeContext, type CascadeScope } from '../cascade/cascade-context.js';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import { addRequestProgress, insertRequest, requestProgressUpdate } from '../sql/request-statements.js';
import type { SqlFragment } from '../sql/rows-under.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import type { EntityPolicy, RelationPolicy } from '../registry/policy-registry.js';
import { DeletionRequest, type RelationProgress } from './deletion-request.entity.js';
import { OutboxPublisher } from './outbox-publisher.js';
import type { DeletionGuard } from '../validation/validation-hoister.js';

/** Parent rows per deletion request: more are split into several requests. */
export const MAX_PARENTS_PER_REQUEST = 1000;

/**
 * Writes deletion requests in the transaction of the delete that causes them, and hands their ids
 * to the {@link OutboxPublisher}, which enqueues them once that transaction has committed.
 */
@Injectable()
export class RequestWriter {
  constructor(@Inject(OutboxPublisher) private readonly publisher: OutboxPublisher) {}

  /** Whether deleting rows of this entity leaves work for the queue. */
  needsRequest(policy: EntityPolicy): boolean {
    return policy.tombstone !== undefined || policy.relations.some((r) => semanticsOf(r.policy).queued);
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
    const request = (requestId: string, parentId: string | null, keys: readonly unknown[]) => ({
      id: requestId,
      rootId,
      parentId,
      entity: policy.meta.className,
      parentIds: jsonKeys(policy.meta, keys),
      path,
      progress: initialProgress(policy.relations),
      ownWorkDone: false,
      tombstone: policy.tombstone !== undefined,
    });
    // Every queued batch names its request's parents: a flush of many parents is split, so a batch
    // costs the same whatever the flush's size. The first request carries the rest as children.
    const [first = [], ...rest] = chunks(parentIds, MAX_PARENTS_PER_REQUEST);
    await this.insert(em, request(id, parent?.requestId ?? null, first), guard);
    for (const keys of rest) {
      await this.insert(em, request(randomUUID(), id, keys));
    }
    return { requestId: id, rootId, path, ensureWritten: async () => {}, ...(parent?.recordSync ? { recordSync: parent.recordSync } : {}) };
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
      isWritten: () => written !== undefined,
      ensureWritten: () =>
        (written ??= this.insert(em, {
          id,
          rootId: id,
          parentId: null,
          entity: policy.meta.className,
          parentIds: jsonKeys(policy.meta, parentIds),
          path: policy.meta.className,
          progress: {},
          ownWorkDone: true,
          tombstone: false,
        })),
    };
  }

  /**
   * Adds to a root request the paths its deletion handled synchronously in the request's own
   * transaction (a `destroy` beside a `destroyAsync`, and everything below it), with their counts,
   * so `status()` lists every path the deletion walked. `entries`: by path, relative to the root.
   */
  async recordSync(em: EntityManager, requestId: string, entries: SyncedPaths): Promise<void> {
    await addRequestProgress(em, em.getMetadata().get(DeletionRequest), requestId, syncProgress(entries));
  }

  /** The statement of `recordSync`, for a caller that runs it as part of its own. */
  recordSyncStatement(em: EntityManager, requestId: string, entries: SyncedPaths): SqlFragment {
    return requestProgressUpdate(em, em.getMetadata().get(DeletionRequest), requestId, syncProgress(entries));
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
      parentIds: jsonKeys(relation.parentMeta, parentIds),
      path: relation.entity,
      progress: initialProgress([relation]),
      ownWorkDone: false,
      tombstone: false,
      origin: 'sweeper',
    });
    return id;
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
    if (em.schema !== undefined && em.schema !== em.config.getSchema()) {
      // The queue, the relay and status() read requests with the ORM's own schema, and its batches
      // would resolve the children's tables there: the row would be lost, or walk another tenant's rows.
      throw DeletionConfigurationError.create(
        'DELETION_CONFIG_SCHEMA',
        { entity: data.entity },
        `a queued deletion was flushed by an entity manager with its own schema ("${em.schema}"), which queued cascades do not follow.`,
        'give the entities their schema in their metadata, or use synchronous policies for deletions made through em.fork({ schema }).',
      );
    }
    const requests = em.getMetadata().get(DeletionRequest);
    const row = { origin: 'deletion', ...data, parentId: data.parentId ?? null, state: 'pending', attempts: 0 };
    const inserted = guard ? await insertRequest(em, requests, row, guard) : false;
    if (!inserted) {
      await guard?.refused();
      await insertRequest(em, requests, row);
    }
    this.publisher.afterCommit(em, data.id);
    if (!data.parentId) {
      CascadeContext.currentDestroy()?.rootRequestIds.push(data.id);
    }
  }
}

/** By path relative to the root, the synchronous policies a deletion ran and their row counts. */
export type SyncedPaths = ReadonlyMap<string, { relation: RelationPolicy; count: number }>;

function syncProgress(entries: SyncedPaths): Record<string, RelationProgress> {
  const progress: Record<string, RelationProgress> = {};
  for (const [key, { relation, count }] of entries) {
    progress[key] = { policy: relation.policy, childEntity: relation.childMeta.className, cursor: null, processed: count, done: true };
  }
  return progress;
}

function initialProgress(relations: readonly RelationPolicy[]): Record<string, RelationProgress> {
  const progress: Record<string, RelationProgress> = {};
  for (const relation of relations.filter((r) => semanticsOf(r.policy).queued)) {
    progress[relation.relation] = { policy: relation.policy, childEntity: relation.childMeta.className, cursor: null, processed: 0, done: false };
  }
  return progress;
}

/** Keys as the request's JSON keeps them (a JS bigint cannot be stored as it is). */
function jsonKeys(meta: EntityMetadata, keys: readonly unknown[]): unknown[] {
  const codec = EntityKeys.of(meta);
  return keys.map((key) => codec.toJson(key));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(items.slice(i, i + size));
  }
  return out;
}
