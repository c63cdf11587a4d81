import { LockMode, type EntityManager } from '@mikro-orm/core';
import { EntityKeys } from '../sql/entity-keys.js';
import { deleteRows } from '../sql/row-statements.js';
import { Inject, Injectable } from '@nestjs/common';
import { DeletionRequest } from '../outbox/deletion-request.entity.js';
import { PolicyRegistry } from '../registry/policy-registry.js';
import { CascadeExecutor } from '../cascade/cascade-executor.js';
import { CascadeContext } from '../cascade/cascade-context.js';

/**
 * Completes a request once its own relations are walked and all its child requests have
 * completed, then tries its parent: the root completes only when its whole subtree has. Row locks
 * (child, then parent) make a parent finishing its own work and a child completing agree.
 */
@Injectable()
export class RequestCompletion {
  constructor(
    @Inject(PolicyRegistry) private readonly registry: PolicyRegistry,
    @Inject(CascadeExecutor) private readonly executor: CascadeExecutor,
  ) {}

  /** Returns the requests completed by this call, innermost first. `request` must be locked. */
  async tryComplete(em: EntityManager, request: DeletionRequest): Promise<DeletionRequest[]> {
    if (!request.ownWorkDone || request.state === 'completed' || request.state === 'failed') {
      return [];
    }
    const open = await em.count(DeletionRequest, { parentId: request.id, state: { $ne: 'completed' } });
    if (open > 0) {
      return [];
    }
    if (request.tombstone && !(await this.purgeTombstoned(em, request))) {
      return [];
    }
    request.state = 'completed';
    request.completedAt = new Date();
    request.updatedAt = new Date();
    request.error = null;
    await em.flush();
    if (!request.parentId) {
      return [request];
    }
    const parent = await em.findOne(DeletionRequest, { id: request.parentId }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
    return parent ? [request, ...(await this.tryComplete(em, parent))] : [request];
  }

  /**
   * Tombstone mode: the marked parent rows go last, once nothing of theirs is left. Children added
   * under them meanwhile get the synchronous policies first; if that files child requests (a
   * destroyed child with queued work of its own), the request waits for them: returns false.
   */
  private async purgeTombstoned(em: EntityManager, request: DeletionRequest): Promise<boolean> {
    const policy = this.registry.forEntityName(request.entity);
    if (!policy?.tombstone) {
      return true;
    }
    const keys = EntityKeys.of(policy.meta);
    const parentIds = request.parentIds.map((id) => keys.fromJson(id));
    const scope = { requestId: request.id, rootId: request.rootId, path: request.path, ensureWritten: async () => {} };
    await CascadeContext.runInRequest(scope, () => this.executor.applyToLateChildren(em, policy, parentIds, scope));
    if ((await em.count(DeletionRequest, { parentId: request.id, state: { $ne: 'completed' } })) > 0) {
      return false;
    }
    await deleteRows(em, policy.meta, parentIds, { tombstoned: policy.tombstone });
    return true;
  }
}
