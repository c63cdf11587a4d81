import type { DeletionRequest, RequestError, RequestOrigin, RequestState } from '../outbox/deletion-request.entity.js';

/** Progress of one relation path of a deletion, summed over every request on that path. */
export interface PathProgress {
  /** e.g. `Author.books.reviews`: the relation walked, from the deleted entity down. */
  path: string;
  entity: string;
  policy: string;
  processed: number;
  done: boolean;
}

/** What `DeletionService.status()` returns: one request and its whole subtree. */
export interface DeletionStatus {
  requestId: string;
  rootId: string;
  entity: string;
  ids: unknown[];
  /** `sweeper` when the orphan sweeper filed it. */
  origin: RequestOrigin;
  /**
   * `completed` once the request and every request below it have; `failed` as soon as any of them
   * has; `running` once any work started; else `pending`.
   */
  state: RequestState;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
  progress: PathProgress[];
  counts: { requests: number; pending: number; running: number; completed: number; failed: number; processed: number };
  /** Errors of the failed requests in the subtree (and the last error of retrying ones). */
  errors: { requestId: string; path: string; state: RequestState; error: RequestError }[];
}

/** Folds a request and all requests of its deletion into the status of its subtree. Pure. */
export function summarize(request: DeletionRequest, family: readonly DeletionRequest[]): DeletionStatus {
  const subtree = subtreeOf(request, family);
  const counts = { requests: subtree.length, pending: 0, running: 0, completed: 0, failed: 0, processed: 0 };
  const byPath = new Map<string, PathProgress>();
  for (const r of subtree) {
    counts[r.state as RequestState] += 1;
    for (const [relation, p] of Object.entries(r.progress ?? {})) {
      const path = `${r.path}.${relation}`;
      const entry = byPath.get(path) ?? { path, entity: p.childEntity, policy: p.policy, processed: 0, done: true };
      entry.processed += p.processed;
      entry.done &&= p.done;
      byPath.set(path, entry);
      counts.processed += p.processed;
    }
  }
  return {
    requestId: request.id,
    rootId: request.rootId,
    entity: request.entity,
    ids: request.parentIds,
    origin: request.origin,
    state: stateOf(request, counts),
    createdAt: request.createdAt,
    startedAt: request.startedAt ?? null,
    completedAt: request.completedAt ?? null,
    progress: [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path)),
    counts,
    errors: subtree.filter((r) => r.error).map((r) => ({ requestId: r.id, path: r.path, state: r.state, error: r.error! })),
  };
}

function stateOf(request: DeletionRequest, counts: DeletionStatus['counts']): RequestState {
  if (request.state === 'completed') {
    return 'completed';
  }
  if (counts.failed > 0) {
    return 'failed';
  }
  if (request.state === 'running' || counts.running > 0 || counts.completed > 0) {
    return 'running';
  }
  return 'pending';
}

function subtreeOf(request: DeletionRequest, family: readonly DeletionRequest[]): DeletionRequest[] {
  const children = new Map<string, DeletionRequest[]>();
  for (const r of family) {
    if (r.parentId) {
      children.set(r.parentId, [...(children.get(r.parentId) ?? []), r]);
    }
  }
  const out: DeletionRequest[] = [];
  const stack = [request];
  while (stack.length) {
    const r = stack.pop()!;
    out.push(r);
    stack.push(...(children.get(r.id) ?? []));
  }
  return out;
}
