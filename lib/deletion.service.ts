import { LockMode, MikroORM, type EntityClass, type EntityManager, type EntityMetadata, type FilterQuery, type Primary } from '@mikro-orm/core';
import { callerKey } from './sql/entity-keys.js';
import { Inject, Injectable } from '@nestjs/common';
import { CascadeContext, type DestroyScope } from './cascade/cascade-context.js';
import { LeanRemoval } from './cascade/lean-removal.js';
import { DeletionConfigurationError } from './errors/deletion-configuration.error.js';
import { DeletionRequestNotFoundError } from './errors/deletion-request-not-found.error.js';
import { DeletionTargetNotFoundError } from './errors/deletion-target-not-found.error.js';
import { DeletionDoctor } from './doctor/deletion-doctor.js';
import type { DoctorFinding } from './doctor/doctor-finding.js';
import type { DeletionReceipt } from './interfaces/deletion-receipt.interface.js';
import { DeletionRequest } from './outbox/deletion-request.entity.js';
import { OutboxPublisher } from './outbox/outbox-publisher.js';
import { isRequestId } from './outbox/request-id.js';
import type { DeletionPlan } from './plan/deletion-plan.js';
import { DeletionPlanner } from './plan/deletion-planner.js';
import { summarize, type DeletionStatus } from './status/deletion-status.js';


/** Options of `DeletionService.destroy()`. */
export interface DestroyOptions {
  /** The caller's entity manager, whose transaction the deletion joins. */
  em?: EntityManager;
}

/**
 * The programmatic entry point: deletes a row through its declared policies, reports on queued
 * cascades and resumes failed ones.
 *
 * @example
 * const receipt = await deletions.destroy(Author, 42);
 * // { entity: 'Author', id: 42, status: 'pending', requestId: '5d0c…' }
 * const status = await deletions.status(receipt.requestId!);
 */
@Injectable()
export class DeletionService {
  constructor(
    @Inject(MikroORM) private readonly orm: MikroORM,
    @Inject(OutboxPublisher) private readonly publisher: OutboxPublisher,
    @Inject(DeletionPlanner) private readonly planner: DeletionPlanner,
    @Inject(DeletionDoctor) private readonly schemaDoctor: DeletionDoctor,
    @Inject(LeanRemoval) private readonly lean: LeanRemoval,
  ) {}

  /**
   * Loads the row (honouring the application's filters, so a hidden row is "not found"), removes it
   * and flushes in a new transaction; the module's subscriber applies the policies in that flush.
   * Queued work is enqueued once the transaction has committed. When nothing in the application
   * would observe that flush (see `LeanRemoval`), the same checks, policies and statement run
   * without it.
   *
   * `id` is the primary key's value (an array of the components for a composite key), never a
   * filter; a string of digits is accepted for an integer key. With `{ em }`, the deletion joins
   * that entity manager's transaction: a rollback there leaves nothing, and queued work is enqueued
   * after its outermost commit.
   *
   * @example
   * await orm.em.transactional(async (em) => {
   *   await audit.record(em, 'author deleted');
   *   await deletions.destroy(Author, 42, { em });
   * });
   *
   * @throws DeletionInvalidIdError (400) when `id` is not a value of the entity's key.
   * @throws DeletionTargetNotFoundError (404) when no such row exists.
   * @throws DeletionRestrictedError (409) when a `restrict` relation still has children.
   */
  async destroy<T extends object>(entity: EntityClass<T>, id: Primary<T>, options: DestroyOptions = {}): Promise<DeletionReceipt> {
    const meta = this.metadataOf(entity);
    const { key, json } = callerKey(meta, id);
    const scope: DestroyScope = { rootRequestIds: [] };
    // With the caller's entity manager, a nested transaction of its own (a savepoint when the caller
    // is in one): the rows go, and the job is enqueued, only when the caller's transaction commits.
    const base = options.em ?? this.orm.em.fork();
    // The caller's entity manager may hold the row, changed, for its own flush: that one applies.
    const lean = options.em ? undefined : this.lean.policyFor(meta);
    await CascadeContext.runInDestroy(scope, () =>
      base.transactional(async (em) => {
        // Locked, so two deletions of the same row serialize: the second finds it gone (404).
        if (lean) {
          if (!(await this.lean.destroy(em, lean, key, scope))) {
            throw DeletionTargetNotFoundError.create(meta.className, id);
          }
          return;
        }
        const target = await em.findOne(entity, key as FilterQuery<NoInfer<T>>, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!target) {
          throw DeletionTargetNotFoundError.create(meta.className, id);
        }
        scope.locked = target;
        em.remove(target);
      }),
    );
    const requestId = scope.rootRequestIds[0];
    return requestId ? { entity: meta.className, id: json, status: 'pending', requestId } : { entity: meta.className, id: json, status: 'completed' };
  }

  /**
   * Previews what `destroy(entity, id)` would do, writing nothing: for each relation path its
   * entity, policy, whether it runs now or later, the row count, and the validators' blockers.
   *
   * @throws DeletionTargetNotFoundError (404) when no such row exists.
   * @example
   * const plan = await deletions.plan(Author, 42);
   * if (!plan.allowed) console.table(plan.blockers);
   */
  async plan<T extends object>(entity: EntityClass<T>, id: Primary<T>): Promise<DeletionPlan> {
    const meta = this.metadataOf(entity);
    const { key, json } = callerKey(meta, id);
    return { ...(await this.planner.plan(meta, key)), id: json };
  }

  /**
   * The state and progress of a deletion request and everything it spawned.
   *
   * @throws DeletionRequestNotFoundError (404) for an unknown id.
   */
  async status(requestId: string): Promise<DeletionStatus> {
    const request = await this.find(requestId);
    const family = await this.orm.em.fork().find(DeletionRequest, { rootId: request.rootId });
    return summarize(request, family);
  }

  /**
   * Resumes the failed requests under `requestId` from their stored cursors, once the cause of the
   * failure is fixed. Requests that are not failed are left as they are.
   *
   * @throws DeletionRequestNotFoundError (404) for an unknown id.
   */
  async retry(requestId: string): Promise<DeletionStatus> {
    const before = await this.status(requestId);
    const failed = before.errors.filter((e) => e.state === 'failed').map((e) => e.requestId);
    if (failed.length > 0) {
      await this.orm.em.fork().nativeUpdate(DeletionRequest, { id: { $in: failed }, state: 'failed' }, { state: 'pending', error: null, attempts: 0, updatedAt: new Date() });
      await this.publisher.replace(failed);
    }
    return this.status(requestId);
  }

  /**
   * Compares the declared policies with the database's real schema, as the doctor does at
   * bootstrap, and returns every finding (errors and warnings) without throwing: for tooling and CI.
   *
   * @example
   * const errors = (await deletions.doctor()).filter((f) => f.severity === 'error');
   */
  doctor(): Promise<DoctorFinding[]> {
    return this.schemaDoctor.inspect();
  }

  private async find(requestId: string): Promise<DeletionRequest> {
    const request = isRequestId(requestId) ? await this.orm.em.fork().findOne(DeletionRequest, { id: requestId }) : null;
    if (!request) {
      throw DeletionRequestNotFoundError.create(requestId);
    }
    return request;
  }

  private metadataOf<T extends object>(entity: EntityClass<T>): EntityMetadata<T> {
    const meta = typeof entity === 'function' ? this.orm.getMetadata().find(entity) : undefined;
    if (!meta || meta.embeddable || meta.virtual) {
      const name = typeof entity === 'function' ? entity.name : String(entity);
      throw DeletionConfigurationError.create(
        'DELETION_CONFIG_UNKNOWN_ENTITY',
        { entity: name },
        `${name} is not an entity known to MikroORM.`,
        `pass an entity class registered in your MikroORM configuration.`,
      );
    }
    return meta;
  }
}
