import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManager } from '@mikro-orm/core';
import { CascadeBatches } from '../../../lib/queue/cascade-batches.js';
import { RelationStatements } from '../../../lib/sql/relation-statements.js';
import { ValidationHoister, type DeletionRoots } from '../../../lib/validation/validation-hoister.js';
import type { DeletionRequest, RelationPolicy, RelationProgress } from '../../../lib/index.js';
import type { DeletionTestApp } from '../../support/deletion-test-app.js';

/** The gate the shared `RelationStatements.deleteCheckedBatch` wrapper reports to. */
const GATED = Symbol('batch gate');

/** How a gated batch ended. */
export interface BatchResult {
  readonly ok: boolean;
  readonly error?: unknown;
}

/** A batch waiting at the gate: `batch` before it starts, `during` once it holds its rows. */
export interface Arrival {
  readonly kind: 'batch' | 'during';
  readonly requestId: string;
  readonly cursor: unknown;
  /** Lets it go on. */
  release(): void;
  /** Settles when the batch has ended (committed work, or thrown). */
  readonly finished: Promise<BatchResult>;
}

/**
 * Drives a queued cascade one batch at a time, deterministically: the test process runs the
 * module's worker, so the gate wraps two methods of the module's own instances (test
 * instrumentation, nothing in lib/ changes):
 *
 *  - `CascadeBatches.run` (one batch of one request, inside the step's transaction, which holds
 *    only the request row's lock at that point): an armed batch waits at the gate (`batch`) until
 *    the test, having applied its actions, releases it;
 *  - `ValidationHoister.assertDeletable` as the batch calls it (the rows of its page are locked by
 *    then, its validators not yet run): when asked, the batch waits there (`during`), so an action
 *    started then meets the batch's row locks;
 *  - `RelationStatements.deleteCheckedBatch`, a `deleteAllAsync` batch that locks, checks and
 *    deletes in one statement (no separate validation to stop before): when asked, the batch waits
 *    right after that statement (`during`), its rows still locked until it commits. An action on
 *    them meets the same locks as before the validators, and nothing else it does can change the
 *    batch, whose validators check only the rows it locked.
 *
 * Only the requests of the armed entity with origin `deletion` are gated; the sweeper's and any
 * other pass through. One worker, one job at a time (concurrency 1).
 */
export class BatchGate {
  private armedEntity: string | undefined;
  private duringWanted = false;
  private current: { requestId: string; cursor: unknown; finished: Promise<BatchResult> } | undefined;
  private readonly arrivals: Arrival[] = [];

  private constructor() {}

  static install(app: DeletionTestApp): BatchGate {
    const gate = new BatchGate();
    const batches = app.module.get(CascadeBatches, { strict: false });
    const run = batches.run.bind(batches);
    batches.run = async (em: EntityManager, relation: RelationPolicy, request: DeletionRequest, progress: RelationProgress) => {
      if (gate.armedEntity === undefined || request.entity !== gate.armedEntity || request.origin !== 'deletion') {
        return run(em, relation, request, progress);
      }
      let settle!: (result: BatchResult) => void;
      const finished = new Promise<BatchResult>((resolve) => (settle = resolve));
      gate.current = { requestId: request.id, cursor: progress.cursor, finished };
      await gate.arrive('batch');
      try {
        const result = await run(em, relation, request, progress);
        settle({ ok: true });
        return result;
      } catch (error) {
        settle({ ok: false, error });
        throw error;
      } finally {
        gate.current = undefined;
      }
    };
    const hoister = app.module.get(ValidationHoister, { strict: false });
    const assertDeletable = hoister.assertDeletable.bind(hoister);
    hoister.assertDeletable = async (em: EntityManager, roots: DeletionRoots, options?: { descend?: boolean }) => {
      // `path` is set for the queue's checks only; a direct deletion meanwhile passes.
      if (gate.current && gate.duringWanted && roots.path !== undefined) {
        gate.duringWanted = false;
        await gate.arrive('during');
      }
      return assertDeletable(em, roots, options);
    };
    // Shared by every RelationStatements instance (one is made per batch): wrapped once per process.
    const proto = RelationStatements.prototype as RelationStatements & { [GATED]?: BatchGate };
    if (!proto[GATED]) {
      const deleteCheckedBatch = proto.deleteCheckedBatch;
      proto.deleteCheckedBatch = async function (this: RelationStatements, ...args: Parameters<RelationStatements['deleteCheckedBatch']>) {
        const result = await deleteCheckedBatch.apply(this, args);
        const active = proto[GATED]!;
        if (active.current && active.duringWanted) {
          active.duringWanted = false;
          await active.arrive('during');
        }
        return result;
      };
    }
    proto[GATED] = gate;
    return gate;
  }

  /** Gates the batches of requests for `entity` (a class name) from now on. */
  arm(entity: string): void {
    this.armedEntity = entity;
  }

  /** Stops gating, and lets every waiting batch go. */
  disarm(): void {
    this.armedEntity = undefined;
    this.duringWanted = false;
    for (const arrival of this.arrivals.splice(0)) {
      arrival.release();
    }
  }

  /** The next released batch stops again once it holds its rows. */
  stopDuring(): void {
    this.duringWanted = true;
  }

  /** Withdraws a `stopDuring()` the batch did not reach. */
  cancelDuring(): void {
    this.duringWanted = false;
  }

  private arrive(kind: Arrival['kind']): Promise<void> {
    const current = this.current!;
    return new Promise<void>((release) => this.arrivals.push({ kind, requestId: current.requestId, cursor: current.cursor, release, finished: current.finished }));
  }

  /**
   * The next arrival of `kind`, or undefined once `stop()` says to give up (checked every few
   * polls, e.g. the request has settled). Fails after `timeoutMs`.
   */
  async next(kind: Arrival['kind'], stop: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<Arrival | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      const at = this.arrivals.findIndex((a) => a.kind === kind);
      if (at >= 0) {
        return this.arrivals.splice(at, 1)[0];
      }
      if (i % 4 === 0 && (await stop())) {
        const late = this.arrivals.findIndex((a) => a.kind === kind);
        return late >= 0 ? this.arrivals.splice(late, 1)[0] : undefined;
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${kind} arrival at the batch gate within ${timeoutMs} ms`);
      }
      await sleep(2);
    }
  }
}
