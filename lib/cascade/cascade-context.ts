import { AsyncLocalStorage } from 'node:async_hooks';
import type { RelationPolicy } from '../registry/policy-registry.js';

/**
 * The request that async work found now attaches to, and the relation path of the rows being
 * deleted. Set by the subscriber for a top-level deletion and by the processor for a batch.
 */
export interface CascadeScope {
  requestId: string;
  rootId: string;
  path: string;
  /** Writes this scope's request row if it was created lazily and is not written yet. */
  ensureWritten(): Promise<void>;
  /** Whether this scope's request row is written (always, unless it was created lazily). */
  isWritten?(): boolean;
  /** The synchronous `destroy` relation whose children are being removed, while they are. */
  destroying?: RelationPolicy;
  /**
   * Inside a queued batch: reports the rows a synchronous policy handled on `path`, so the
   * request's status lists that path too.
   */
  recordSync?: (path: string, relation: RelationPolicy, count: number) => void;
}

/** What a `DeletionService.destroy()` call wants to learn from the flush it triggers. */
export interface DestroyScope {
  rootRequestIds: string[];
  /** The entity `destroy()` loaded under a row lock: the subscriber does not lock its row again. */
  locked?: object;
}

const cascadeScope = new AsyncLocalStorage<CascadeScope>();
const destroyScope = new AsyncLocalStorage<DestroyScope>();

/** Carries the current cascade and destroy call through MikroORM's flush into the subscriber. */
export const CascadeContext = {
  runInRequest<T>(scope: CascadeScope, fn: () => Promise<T>): Promise<T> {
    return cascadeScope.run(scope, fn);
  },
  currentRequest(): CascadeScope | undefined {
    return cascadeScope.getStore();
  },
  runInDestroy<T>(scope: DestroyScope, fn: () => Promise<T>): Promise<T> {
    return destroyScope.run(scope, fn);
  },
  currentDestroy(): DestroyScope | undefined {
    return destroyScope.getStore();
  },
};
