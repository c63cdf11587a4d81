import { setTimeout as sleep } from 'node:timers/promises';
import { LockMode, MikroORM, type EntityManager } from '@mikro-orm/core';
import { semanticsOf } from '../policies/policy-semantics.js';
import { EntityKeys } from '../sql/entity-keys.js';
import { RelationStatements } from '../sql/relation-statements.js';
import { Inject, Injectable } from '@nestjs/common';
import { CascadeContext } from '../cascade/cascade-context.js';
import { RESOLVED_DELETION_OPTIONS } from '../deletion.constants.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DeletionRequest, type RelationProgress, type RequestError } from '../outbox/deletion-request.entity.js';
import { PolicyRegistry, type EntityPolicy, type RelationPolicy } from '../registry/policy-registry.js';
import { CascadeBatches } from './cascade-batches.js';
import { DeletionOrphan } from '../outbox/deletion-orphan.entity.js';
import { DeletionStalledError } from '../errors/deletion-stalled.error.js';
import { RequestCompletion } from './request-completion.js';
import { lockRequest, updateRequest } from '../sql/request-statements.js';

/** Walks of one relation after which children still appearing fail the request (it makes no progress). */
const MAX_WALKS = 5;

/** How a run of a request ended. */
export type RunOutcome =
  | { kind: 'completed'; completed: DeletionRequest[] }
  | { kind: 'waiting' } // own work done, child requests still open
  | { kind: 'finished-before' } // already completed or failed
  | { kind: 'missing' }
  | { kind: 'interrupted' }; // the worker is closing: the rest is handed back to the queue

type Step = RunOutcome | { kind: 'continue' };

/**
 * Runs one deletion request batch by batch. Each batch is one transaction that locks the request
 * row, does the work and stores the new cursor, so a worker killed at any point resumes from the
 * last committed batch, and two deliveries of the same job serialize on the lock.
 */
@Injectable()
export class RequestRunner {
  private stopping = false;

  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(CascadeBatches) private readonly batches: CascadeBatches,
    @Inject(RequestCompletion) private readonly completion: RequestCompletion,
    @Inject(RESOLVED_DELETION_OPTIONS) private readonly options: ResolvedDeletionOptions,
  ) {}

  async run(requestId: string): Promise<RunOutcome> {
    const pause = this.options.worker === false ? 0 : this.options.worker.pauseBetweenBatchesMs;
    for (;;) {
      const step = await this.orm.em.fork().transactional((em) => this.step(em, requestId));
      if (step.kind !== 'continue') {
        return step;
      }
      if (this.stopping) {
        return { kind: 'interrupted' };
      }
      if (pause > 0) {
        await sleep(pause);
      }
    }
  }

  /**
   * The worker is closing: requests stop after the batch under way (its cursor is committed), so
   * shutdown waits for one batch, never for a whole cascade.
   */
  stop(): void {
    this.stopping = true;
  }

  /** Records a failed attempt; `final` marks the request failed (no more automatic retries). */
  async recordFailure(requestId: string, error: RequestError, final: boolean): Promise<{ request: DeletionRequest | null; newlyFailed: boolean }> {
    return this.orm.em.fork().transactional(async (em) => {
      const request = await em.findOne(DeletionRequest, { id: requestId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!request || request.state === 'completed' || request.state === 'failed') {
        return { request, newlyFailed: false };
      }
      request.attempts += 1;
      request.error = error;
      request.updatedAt = new Date();
      if (final) {
        request.state = 'failed';
      }
      return { request, newlyFailed: final };
    });
  }

  private async step(em: EntityManager, requestId: string): Promise<Step> {
    const requests = em.getMetadata().get(DeletionRequest);
    const request = await lockRequest(em, requests, requestId);
    if (!request) {
      return { kind: 'missing' };
    }
    if (request.state === 'completed' || request.state === 'failed') {
      return { kind: 'finished-before' };
    }
    const touched: Partial<DeletionRequest> = request.state === 'pending' ? { state: 'running', startedAt: request.startedAt ?? new Date(), updatedAt: new Date() } : { updatedAt: new Date() };
    const policy = this.policyOf(request);
    const next = policy.relations.find((r) => request.progress[r.relation] && !request.progress[r.relation]!.done);
    if (next) {
      const progress = request.progress[next.relation]!;
      // Synchronous policies that run inside the batch (a destroyed child's deleteAll) are counted
      // on their own paths, relative to this request's.
      const synced = new Map<string, { relation: RelationPolicy; count: number }>();
      const recordSync = (path: string, relation: RelationPolicy, count: number) => {
        const key = path.slice(request.path.length + 1);
        synced.set(key, { relation, count: (synced.get(key)?.count ?? 0) + count });
      };
      const scope = { requestId: request.id, rootId: request.rootId, path: `${request.path}.${next.relation}`, ensureWritten: async () => {}, recordSync };
      const batch = await CascadeContext.runInRequest(scope, () => this.batches.run(em, next, request, progress));
      const progressNow: Record<string, RelationProgress> = {
        ...request.progress,
        [next.relation]: { ...progress, cursor: batch.cursor, processed: progress.processed + batch.count, done: batch.done },
      };
      for (const [key, { relation, count }] of synced) {
        const before = progressNow[key];
        progressNow[key] = { policy: relation.policy, childEntity: relation.childMeta.className, cursor: null, processed: (before?.processed ?? 0) + count, done: batch.done };
      }
      if (batch.done) {
        // The paths below this relation are done with it, the last batch found rows for them or not.
        for (const key of Object.keys(progressNow).filter((k) => k.startsWith(`${next.relation}.`))) {
          progressNow[key] = { ...progressNow[key]!, done: true };
        }
      }
      // One statement for the batch's bookkeeping, on the row locked above (a flush of the mapped
      // entity would compute its change set and build the same UPDATE, every batch).
      await updateRequest(em, requests, request.id, { ...touched, progress: progressNow });
      return { kind: 'continue' };
    }
    Object.assign(request, touched);
    if (request.tombstone && (await this.reopenLateChildren(em, policy, request))) {
      return { kind: 'continue' };
    }
    request.ownWorkDone = true;
    const completed = await this.completion.tryComplete(em, request);
    return completed.length > 0 ? { kind: 'completed', completed } : { kind: 'waiting' };
  }

  /**
   * Before a tombstoned parent is hard-deleted: children inserted while its cascade ran would make
   * the delete fail on the foreign key, so their relations are walked again.
   */
  private async reopenLateChildren(em: EntityManager, policy: EntityPolicy, request: DeletionRequest): Promise<boolean> {
    let reopened = false;
    const keys = EntityKeys.of(policy.meta);
    const parentIds = request.parentIds.map((id) => keys.fromJson(id));
    for (const relation of policy.relations.filter((r) => semanticsOf(r.policy).queued)) {
      const statements = new RelationStatements(relation);
      if (await statements.any(em, parentIds)) {
        const progress = request.progress[relation.relation]!;
        const walks = (progress.walks ?? 1) + 1;
        if (walks > MAX_WALKS) {
          throw DeletionStalledError.create(`${request.path}.${relation.relation}`, walks - 1);
        }
        if (semanticsOf(relation.policy).detaches) {
          // nullifyThenPurge: the late children are detached and recorded like the first ones; the
          // purge goes on after its cursor (the new records come after it).
          await statements.nullifyAndRecord(em, parentIds, em.getMetadata().get(DeletionOrphan), request.id);
          request.progress = { ...request.progress, [relation.relation]: { ...progress, done: false, walks } };
        } else {
          request.progress = { ...request.progress, [relation.relation]: { ...progress, cursor: null, done: false, walks } };
        }
        reopened = true;
      }
    }
    return reopened;
  }

  private policyOf(request: DeletionRequest): EntityPolicy {
    const policy = this.registry.forEntityName(request.entity);
    if (!policy) {
      throw new Error(`Deletion request ${request.id} is for ${request.entity}, which has no deletion policy in this application.`);
    }
    return policy;
  }
}
