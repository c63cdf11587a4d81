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

/**
 * A batch waiting at the gate: `batch` before it starts, `during` once it holds its rows, `after`
 * once its work is done (returned or thrown) but before its step's transaction goes on and commits.
 */
export interface Arrival {
  readonly kind: 'batch' | 'during' | 'after';
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
 *    batch, whose validators check only the rows it locked;
 *  - after `CascadeBatches.run` has returned or thrown, when asked (`stopAfter()`): the batch waits
 *    there (`after`), its step's transaction still open (its rows locked, nothing committed), so a
 *    transaction held open across the batch (the spec's held actions) ends before the step goes on:
 *    the next step (another batch, or the request's completion: late children, the tombstoned
 *    parent's DELETE) always sees it ended.
 *
 * Only the requests of the armed entity with origin `deletion` are gated; the sweeper's and any
 * other pass through. One worker, one job at a time (concurrency 1).
 */
export class BatchGate {
  private armedEntity: string | undefined;
  private duringWanted = false;
  private afterWanted = false;
  private current: { requestId: string; cursor: unknown; finished: Promise<BatchResult> } | undefined;
  private readonly arrivals: Arrival[] = [];
  /** Arrivals handed to the test (`next`, `take`) and not yet released. */
  private readonly handedOut = new Set<Arrival>();

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
      let ended: BatchResult;
      let value: Awaited<ReturnType<typeof run>> | undefined;
      try {
        value = await run(em, relation, request, progress);
        ended = { ok: true };
      } catch (error) {
        ended = { ok: false, error };
      }
      try {
        if (gate.afterWanted) {
          gate.afterWanted = false;
          await gate.arrive('after');
        }
      } finally {
        gate.current = undefined;
        settle(ended);
      }
      if (!ended.ok) {
        throw ended.error;
      }
      return value!;
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
    this.afterWanted = false;
    for (const arrival of this.arrivals.splice(0)) {
      arrival.release();
    }
  }

  /** The next released batch stops again once it holds its rows. */
  stopDuring(): void {
    this.duringWanted = true;
  }

  /**
   * Stops gating and lets every batch go, those the test has taken and not released included (a
   * case that broke between taking a batch and releasing it would leave that batch's step, and the
   * request row it locks, waiting for ever).
   */
  abandon(): void {
    this.disarm();
    for (const arrival of [...this.handedOut]) {
      arrival.release();
    }
  }

  /** Withdraws a `stopDuring()` the batch did not reach. */
  cancelDuring(): void {
    this.duringWanted = false;
  }

  /**
   * The next released batch stops again once it has ended (returned or thrown), before its step's
   * transaction goes on (`after`); call after any `disarm()` for it.
   */
  stopAfter(): void {
    this.afterWanted = true;
  }

  /** A waiting arrival of `kind`, taken from the gate, if there is one now. */
  take(kind: Arrival['kind']): Arrival | undefined {
    const at = this.arrivals.findIndex((a) => a.kind === kind);
    return at >= 0 ? this.handOut(at) : undefined;
  }

  private arrive(kind: Arrival['kind']): Promise<void> {
    const current = this.current!;
    return new Promise<void>((resolve) => {
      const arrival: Arrival = {
        kind,
        requestId: current.requestId,
        cursor: current.cursor,
        release: () => {
          this.handedOut.delete(arrival);
          resolve();
        },
        finished: current.finished,
      };
      this.arrivals.push(arrival);
    });
  }

  private handOut(at: number): Arrival {
    const arrival = this.arrivals.splice(at, 1)[0]!;
    this.handedOut.add(arrival);
    return arrival;
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
        return this.handOut(at);
      }
      if (i % 4 === 0 && (await stop())) {
        const late = this.arrivals.findIndex((a) => a.kind === kind);
        return late >= 0 ? this.handOut(late) : undefined;
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${kind} arrival at the batch gate within ${timeoutMs} ms`);
      }
      await sleep(2);
    }
  }
}
