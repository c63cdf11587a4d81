import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import * as fc from 'fast-check';
import pg from 'pg';
import { DeletionBlockedError, DeletionTargetNotFoundError, OrphanSweeper, definePolicy, type DeletionStatus } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { databaseUrl } from '../support/services.js';
import { DeleteJournal, KidDeleteSubscriber, createMixLanes, type MixLane } from './fixtures/interleave-lanes.js';
import {
  MixModel,
  P,
  PARENTS,
  Q1,
  Q2,
  describeAction,
  describeConfig,
  resolveGaps,
  tagOf,
  type Action,
  type ActionOutcome,
  type BatchOutcome,
  isPageAction,
  type Gap,
  type Held,
  type Kid,
  type MixConfig,
  type MixScenario,
  type QueuedPolicy,
  type RemoveHow,
  type Resolved,
} from './interleave-model.js';
import { BatchGate, type Arrival, type BatchResult } from './support/batch-gate.js';
import { poll, propertyEnv } from './support/property-env.js';

/**
 * Property-based tests of issue 12's "never over-delete under concurrency", with concurrent actions
 * interleaved between the batches of a queued cascade, and inside them. Parent P is deleted under
 * `Parent.kids = destroyAsync | deleteAllAsync | nullifyThenPurge` (batch size 1-3, tombstone mode
 * on the parent or not; fixtures/interleave-lanes.ts); the queue's batches are driven one at a time
 * (support/batch-gate.ts), and before each, random actions run: a kid moved to a surviving parent,
 * deleted directly (`destroy(Kid, id)` or `em.remove` + flush), inserted under P (or a surviving
 * parent), its `blocked` flag flipped; and at most one action either starts while the batch holds
 * its rows (it waits on their locks, then goes on), or is **held** across the batch: run in a
 * transaction of its own before the batch starts, left open (its row locked) until the batch waits
 * on that row or has ended without it, then committed or rolled back (the batch waits on it: the
 * interleaving where a batch re-checks a row another transaction changed meanwhile). The pure model
 * (interleave-model.ts) runs in lockstep, and after every step the database must hold exactly its
 * rows:
 *
 *  - a batch deletes only kids that still belong to P (a moved kid survives under its new parent);
 *    one that waited on a held action sees it committed (or not) as the model says, under each
 *    policy's statement (`MixModel.held`), and it waits exactly when the model says it comes to
 *    the held row; the walk ends exactly when the model's does;
 *  - a kid flagged before its batch fails the request with DeletionBlockedError naming it, the
 *    batch rolls back whole; unflagged, `retry()` resumes it;
 *  - a kid deleted directly is deleted once; every kid deleted through the ORM has its `afterDelete`
 *    hooks (entity hook and subscriber) run exactly once, a set-based delete none;
 *  - kids inserted under P while it is being deleted: in tombstone mode the cascade removes them
 *    before P's row goes; without, they are orphans the sweeper (`OrphanSweeper.sweep()`) removes
 *    through the policy, or, under `nullifyThenPurge` (which keeps its NO ACTION constraint), the
 *    constraint refuses them;
 *  - in the end the request is completed, no request is open and no orphan record is left.
 *
 * Half the lanes give the kid no validator: the module then leaves the kid to MikroORM, and the
 * queue takes its direct paths (`deleteAllAsync` deletes a batch in one statement; EntityRemover
 * removes a page without a flush, dispatching the hooks itself), unless an application subscriber
 * listens to flushes: half the cases run with one present (then pages are flushed).
 *
 * Environment: PROPERTY_RUNS (default 200, spread over the twelve properties), PROPERTY_SEED,
 * PROPERTY_PATH (with -t), PROPERTY_DATABASE (the database is `<PROPERTY_DATABASE>_interleave`,
 * default deletion_prop_interleave), PROPERTY_TRACE (prints every case and step as it runs).
 */
const { runs: RUNS, seed: SEED, path: PATH, database: DATABASE } = propertyEnv('interleave');
const POLICIES: readonly QueuedPolicy[] = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];
/** PROPERTY_RUNS cases spread over the twelve properties (each policy, with and without tombstone mode and the kid's validator), at least 20 each. */
const PROPERTY_RUNS_EACH = Math.max(Math.min(RUNS, 20), Math.ceil(RUNS / (POLICIES.length * 4)));

interface Entry {
  readonly index: number;
  readonly config: MixConfig;
  readonly lane: MixLane;
}

const configs: MixConfig[] = POLICIES.flatMap((policy) =>
  [1, 2, 3].flatMap((batchSize) =>
    [false, true].flatMap((tombstone) =>
      // A validated kid with batches of 2: nothing observes its removal (direct deletions of it take the module's own path).
      [true, false].map((validated) => ({ policy, batchSize, tombstone, fk: tombstone || policy === 'nullifyThenPurge', validated, observed: !(validated && batchSize === 2) })),
    ),
  ),
);
const lanes = createMixLanes(configs.map(({ fk, validated, observed }) => ({ fk, validated, observed })));
const pool: Entry[] = configs.map((config, index) => ({ index, config, lane: lanes[index]! }));

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

interface GenCase {
  configIndex: number;
  kids: number;
  bystanders: [number, number];
  flushPath: boolean;
  gaps: Gap<Action, Action>[];
}

/** Mostly one of P's initial kids (the first known), sometimes any kid known (bystanders, inserted ones). */
const kidRef = fc.oneof({ withCrossShrink: true }, { weight: 3, arbitrary: fc.nat(7) }, { weight: 1, arbitrary: fc.nat(40) });
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('move' as const), kid: kidRef, to: fc.constantFrom(Q1, Q2) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), kid: kidRef, how: fc.constantFrom<RemoveHow>('destroy', 'flush', 'transaction') }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), slot: fc.oneof(fc.nat(2), fc.nat(8)), under: fc.oneof({ weight: 3, arbitrary: fc.constant(P) }, { weight: 1, arbitrary: fc.constant(Q1) }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), kid: kidRef }) },
);

/** While a batch holds its rows: mostly a row of its page deleted, moved or flagged; else any action. */
const onPage = fc.record({ page: fc.nat(2) });
const duringAction: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), kid: onPage, how: fc.constantFrom<RemoveHow>('destroy', 'flush', 'transaction') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('move' as const), kid: onPage, to: fc.constantFrom(Q1, Q2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flip' as const), kid: onPage }) },
  { weight: 2, arbitrary: action },
);

/**
 * Held open across a batch: mostly a row of its page (or any kid) moved, deleted or flagged by a
 * transaction of its own (plain SQL), committed or rolled back; a direct deletion through the ORM
 * (`em.remove` + flush, or `destroy()`, inside `em.transactional()`), committed (its `afterDelete`
 * hooks run inside the transaction, so a rollback would leave a row whose hooks ran); an insert.
 */
const heldRef = fc.oneof({ withCrossShrink: true }, { weight: 3, arbitrary: onPage }, { weight: 1, arbitrary: kidRef });
const heldSql: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('move' as const), kid: heldRef, to: fc.constantFrom(Q1, Q2) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), kid: heldRef, how: fc.constant<RemoveHow>('sql') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), kid: heldRef }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), slot: fc.oneof(fc.nat(2), fc.nat(8)), under: fc.constantFrom(P, Q1) }) },
);
const heldStep: fc.Arbitrary<Held<Action>> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ action: heldSql, commit: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }) },
  { weight: 1, arbitrary: fc.record({ action: fc.record({ kind: fc.constant('remove' as const), kid: heldRef, how: fc.constantFrom<RemoveHow>('transaction', 'destroy') }), commit: fc.constant(true) }) },
);

type Concurrent = { readonly during: Action } | { readonly held: Held<Action> } | null;

const genCase = (configIndexes: readonly number[]): fc.Arbitrary<GenCase> => fc.record({
  configIndex: fc.constantFrom(...configIndexes),
  kids: fc.nat(8),
  bystanders: fc.tuple(fc.nat(2), fc.nat(2)),
  flushPath: fc.boolean(),
  gaps: fc.array(
    fc
      .record({
        between: fc.array(action, { maxLength: 3 }),
        // At most one action meets the batch: started while it holds its rows, or held across it.
        concurrent: fc.oneof(
          { withCrossShrink: true },
          { weight: 3, arbitrary: fc.constant<Concurrent>(null) },
          { weight: 2, arbitrary: duringAction.map((during): Concurrent => ({ during })) },
          { weight: 3, arbitrary: heldStep.map((held): Concurrent => ({ held })) },
        ),
      })
      .map(({ between, concurrent }): Gap<Action, Action> => ({
        between,
        during: concurrent && 'during' in concurrent ? concurrent.during : null,
        held: concurrent && 'held' in concurrent ? concurrent.held : null,
      })),
    { maxLength: 10 },
  ),
});

type Case = MixScenario & { configIndex: number; flushPath: boolean };

function toScenario(generated: GenCase): Case {
  const kids: Kid[] = [];
  const add = (id: number, parent: number) => kids.push({ id, parent, tag: tagOf(id), blocked: false });
  for (let i = 1; i <= generated.kids; i++) {
    add(i * 10, P);
  }
  // Bystanders, keyed between P's kids: a page of P's kids must skip them.
  generated.bystanders.forEach((n, j) => {
    for (let i = 0; i < n; i++) {
      add(10 * (2 * i + 1 + j) + 3, j === 0 ? Q1 : Q2);
    }
  });
  const scenario: Case = {
    configIndex: generated.configIndex,
    config: pool[generated.configIndex]!.config,
    kids,
    gaps: resolveGaps(kids, generated.gaps),
    flushPath: generated.flushPath,
  };
  return Object.assign(scenario, { [fc.toStringMethod]: () => `\n${describeScenario(scenario)}\n` });
}

function describeScenario(scenario: Case): string {
  const under = (parent: number) => scenario.kids.filter((k) => k.parent === parent).map((k) => `Kid#${k.id}`).join(', ') || 'none';
  return [
    `configuration #${scenario.configIndex} (lane ${pool[scenario.configIndex]!.lane.index}): ${describeConfig(scenario.config)}${scenario.flushPath ? '; a flush subscriber is present' : ''}`,
    `kids: under Parent#${P} (deleted): ${under(P)}; under Parent#${Q1}: ${under(Q1)}; under Parent#${Q2}: ${under(Q2)}`,
    ...scenario.gaps.flatMap((gap, i) => [
      ...gap.between.map((a) => `before batch ${i + 1}: ${describeAction(a)}`),
      ...(gap.during ? [`while batch ${i + 1} holds its rows: ${describeAction(gap.during)}`] : []),
      ...(gap.held
        ? [`held across batch ${i + 1}: ${describeAction(gap.held.action)}, in a transaction left open until the batch waits on it or has ended, then ${gap.held.commit ? 'committed' : 'rolled back'}`]
        : []),
    ]),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------

let app: DeletionTestApp;
let gate: BatchGate;
let client: pg.Client;
let watcher: pg.Client;
/** The connection of the held actions in plain SQL, and its backend's pid. */
let holder: pg.Client;
let holderPid: number;
/** A subscriber with no flush listener of its own; given an `onFlush` property, EntityRemover takes its flush path. */
const flushWatcher: Record<string, unknown> = {};
const tally = new Map<string, number>();
const count = (what: string, n = 1) => tally.set(what, (tally.get(what) ?? 0) + n);

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

beforeAll(async () => {
  console.log(
    [
      `interleave properties: seed ${SEED} (PROPERTY_SEED=${SEED} replays), ${RUNS} runs, ${pool.length} configurations:`,
      ...pool.map((p) => `  #${p.index} lane ${p.lane.index}: ${describeConfig(p.config)}`),
    ].join('\n'),
  );
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: lanes.flatMap((lane) => lane.schemas),
    deletion: {
      batchSize: 2,
      policies: pool.map(({ lane, config }) => definePolicy(lane.Parent, { kids: { policy: config.policy, batchSize: config.batchSize } }, config.tombstone ? { tombstone: 'deletedAt' } : {})),
      queue: { attempts: 2, backoffMs: 10 },
      doctor: 'off',
    },
  });
  Logger.overrideLogger(['fatal']);
  const events = app.orm.em.getEventManager();
  events.registerSubscriber(new KidDeleteSubscriber(lanes.filter((lane) => lane.shape.observed).map((lane) => lane.Kid)));
  events.registerSubscriber(flushWatcher as never);
  gate = BatchGate.install(app);
  client = await connect();
  watcher = await connect();
  holder = await connect();
  holderPid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
}, 180_000);

afterAll(async () => {
  if (tally.size > 0) {
    console.log(`interleave properties (shrinking included): ${[...tally].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  gate?.abandon();
  await client?.end();
  await watcher?.end();
  await holder?.end();
  await app?.close();
});

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

/** A broken invariant: the case stops there (the next steps would start from other rows than the model's). */
class Broken extends Error {}

interface Dumped {
  kids: Kid[];
  parents: Map<number, 'live' | 'tombstoned' | 'gone'>;
}

async function dump(lane: MixLane): Promise<Dumped> {
  const { rows } = await client.query<{ tbl: string; id: number; parent: number | null; tag: number; blocked: boolean; tombstoned: boolean }>(
    `select 'kid' as tbl, id, parent_id as parent, tag, blocked, false as tombstoned from ${lane.tables.kid}
     union all select 'parent', id, null, tag, false, deleted_at is not null from ${lane.tables.parent} order by 1, 2`,
  );
  const parents = new Map<number, 'live' | 'tombstoned' | 'gone'>(PARENTS.map((p) => [p, 'gone']));
  for (const row of rows.filter((r) => r.tbl === 'parent')) {
    parents.set(row.id, row.tombstoned ? 'tombstoned' : 'live');
  }
  return { kids: rows.filter((r) => r.tbl === 'kid').map(({ id, parent, tag, blocked }) => ({ id, parent, tag, blocked })), parents };
}

function diff(model: MixModel, found: Dumped): string[] {
  const out: string[] = [];
  for (const p of PARENTS) {
    if (model.parents.get(p) !== found.parents.get(p)) {
      out.push(`Parent#${p} is ${found.parents.get(p)}, expected ${model.parents.get(p)}`);
    }
  }
  const want = new Map(model.rows().map((k) => [k.id, k]));
  const got = new Map(found.kids.map((k) => [k.id, k]));
  for (const [id, kid] of want) {
    const row = got.get(id);
    if (!row) {
      out.push(`over-deletion: Kid#${id} is gone but must remain (under Parent#${kid.parent})`);
    } else if (row.parent !== kid.parent || row.blocked !== kid.blocked || row.tag !== kid.tag) {
      out.push(`changed: Kid#${id} is ${JSON.stringify(row)}, expected ${JSON.stringify(kid)}`);
    }
  }
  for (const id of got.keys()) {
    if (!want.has(id)) {
      out.push(`under-deletion: Kid#${id} remains (under Parent#${got.get(id)!.parent}) but must be gone`);
    }
  }
  return out;
}

function hookDiff(model: MixModel, lane: MixLane): string[] {
  const out: string[] = [];
  if (!lane.shape.observed) {
    // Nothing counts this lane's removals: its rows are checked, not its hooks.
    return out;
  }
  const ids = new Set<number>([...model.hooks.keys()]);
  for (const journal of [DeleteJournal.hook, DeleteJournal.subscriber]) {
    for (const name of journal.keys()) {
      const [entity, id] = name.split('#');
      if (entity === lane.Kid.name) {
        ids.add(Number(id));
      }
    }
  }
  for (const id of [...ids].sort((a, b) => a - b)) {
    const expected = model.hooks.get(id) ?? 0;
    const hook = DeleteJournal.hook.get(`${lane.Kid.name}#${id}`) ?? 0;
    const subscriber = DeleteJournal.subscriber.get(`${lane.Kid.name}#${id}`) ?? 0;
    if (hook !== expected || subscriber !== expected) {
      out.push(`Kid#${id}'s afterDelete ran ${hook} time(s) (entity hook) and ${subscriber} (subscriber), expected ${expected}`);
    }
  }
  return out;
}

/** Runs a resolved action on the database, and says what it did, in the model's terms. */
async function perform(lane: MixLane, action: Resolved): Promise<ActionOutcome | { kind: 'error'; detail: string }> {
  try {
    switch (action.kind) {
      case 'none':
        return { kind: 'none' };
      case 'move': {
        const result = await client.query(`update ${lane.tables.kid} set parent_id = $1 where id = $2`, [action.to, action.id]);
        return { kind: 'updated', rows: result.rowCount === 1 ? 1 : 0 };
      }
      case 'flip': {
        const result = await client.query(`update ${lane.tables.kid} set blocked = not blocked where id = $1`, [action.id]);
        return { kind: 'updated', rows: result.rowCount === 1 ? 1 : 0 };
      }
      case 'insert':
        try {
          await client.query(`insert into ${lane.tables.kid} (id, parent_id, tag, blocked) values ($1, $2, $3, false)`, [action.id, action.under, tagOf(action.id)]);
          return { kind: 'inserted' };
        } catch (error) {
          if ((error as { code?: string }).code === '23503') {
            return { kind: 'fk' };
          }
          throw error;
        }
      case 'remove':
        if (action.how === 'sql') {
          const result = await client.query(`delete from ${lane.tables.kid} where id = $1`, [action.id]);
          return { kind: result.rowCount === 1 ? 'deleted' : 'missing' };
        }
        try {
          if (action.how === 'destroy') {
            await app.deletions.destroy(lane.Kid, action.id);
          } else if (action.how === 'transaction') {
            const found = await app.em().transactional(async (tx) => {
              const kid = await tx.findOne(lane.Kid, { id: action.id });
              if (kid) {
                tx.remove(kid);
              }
              return kid !== null;
            });
            if (!found) {
              return { kind: 'missing' };
            }
          } else {
            const em = app.em();
            const kid = await em.findOne(lane.Kid, { id: action.id });
            if (!kid) {
              return { kind: 'missing' };
            }
            em.remove(kid);
            await em.flush();
          }
          return { kind: 'deleted' };
        } catch (error) {
          if (error instanceof DeletionTargetNotFoundError) {
            return { kind: 'missing' };
          }
          if (error instanceof DeletionBlockedError) {
            return { kind: 'blocked' };
          }
          throw error;
        }
    }
  } catch (error) {
    return { kind: 'error', detail: error instanceof Error ? `${error.name}: ${error.message}` : inspect(error) };
  }
}

const sameOutcome = (a: ActionOutcome | { kind: 'error' }, b: ActionOutcome) => JSON.stringify(a) === JSON.stringify(b);

/** An action held open: its statement has run in a transaction of its own, which has not ended. */
interface Holding {
  /** What its statement did. */
  readonly outcome: Awaited<ReturnType<typeof perform>>;
  /** The backend of its transaction while that is open; undefined: it is already over (it failed, or did nothing). */
  readonly pid: number | undefined;
  /** Commits (`true`) or rolls back its transaction; resolves once it has ended. */
  end(commit: boolean): Promise<void>;
}

const over = (outcome: Holding['outcome']): Holding => ({ outcome, pid: undefined, end: async () => undefined });
const describeError = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : inspect(error));

/**
 * Runs `action` in a transaction of its own and leaves it open: plain SQL on the `holder`
 * connection, or a direct deletion through the ORM inside `em.transactional()` (`destroy(Kid, id,
 * { em })`, or `em.remove` + flush), whose callback waits until `end()` decides.
 */
async function hold(lane: MixLane, action: Resolved): Promise<Holding> {
  if (action.kind === 'none') {
    return over({ kind: 'none' });
  }
  if (action.kind === 'remove' && action.how !== 'sql') {
    return holdRemoval(lane, action);
  }
  await holder.query('begin');
  let outcome: Holding['outcome'];
  try {
    switch (action.kind) {
      case 'move':
      case 'flip': {
        const set = action.kind === 'move' ? 'parent_id = $2' : 'blocked = not blocked';
        const result = await holder.query(`update ${lane.tables.kid} set ${set} where id = $1`, action.kind === 'move' ? [action.id, action.to] : [action.id]);
        outcome = { kind: 'updated', rows: result.rowCount === 1 ? 1 : 0 };
        break;
      }
      case 'remove': {
        const result = await holder.query(`delete from ${lane.tables.kid} where id = $1`, [action.id]);
        outcome = { kind: result.rowCount === 1 ? 'deleted' : 'missing' };
        break;
      }
      case 'insert':
        await holder.query(`insert into ${lane.tables.kid} (id, parent_id, tag, blocked) values ($1, $2, $3, false)`, [action.id, action.under, tagOf(action.id)]);
        outcome = { kind: 'inserted' };
        break;
    }
  } catch (error) {
    await holder.query('rollback');
    return over((error as { code?: string }).code === '23503' ? { kind: 'fk' } : { kind: 'error', detail: describeError(error) });
  }
  return { outcome, pid: holderPid, end: async (commit) => void (await holder.query(commit ? 'commit' : 'rollback')) };
}

/** A direct deletion through the ORM, held open inside `em.transactional()`. */
async function holdRemoval(lane: MixLane, action: Extract<Resolved, { kind: 'remove' }>): Promise<Holding> {
  const rolledBack = new Error('held removal rolled back');
  const notFound = new Error('not found');
  let decide!: (commit: boolean) => void;
  const decision = new Promise<boolean>((resolve) => (decide = resolve));
  let opened!: (holding: Holding) => void;
  const ready = new Promise<Holding>((resolve) => (opened = resolve));
  const transaction = app.em().transactional(async (tx) => {
    const [backend] = await (tx as unknown as { execute(sql: string): Promise<{ pid: number }[]> }).execute('select pg_backend_pid() as pid');
    if (action.how === 'destroy') {
      await app.deletions.destroy(lane.Kid, action.id, { em: tx });
    } else {
      const kid = await tx.findOne(lane.Kid, { id: action.id });
      if (!kid) {
        throw notFound;
      }
      tx.remove(kid);
      await tx.flush();
    }
    const ended = transaction.then(
      () => undefined,
      (error: unknown) => {
        if (error !== rolledBack) {
          throw error;
        }
      },
    );
    opened({ outcome: { kind: 'deleted' }, pid: backend!.pid, end: (commit) => (decide(commit), ended) });
    if (!(await decision)) {
      throw rolledBack;
    }
  });
  // A failure before the row is held (gone, refused): the transaction is rolled back and over.
  transaction.catch((error: unknown) =>
    opened(
      over(
        error === notFound || error instanceof DeletionTargetNotFoundError
          ? { kind: 'missing' }
          : error instanceof DeletionBlockedError
            ? { kind: 'blocked' }
            : { kind: 'error', detail: describeError(error) },
      ),
    ),
  );
  return ready;
}

/**
 * Once a batch is released under a held action: whether it comes to wait on a lock the held
 * transaction (backend `pid`) holds, or ends (its `after` arrival at the gate) without that.
 */
async function heldMet(pid: number, ms: number): Promise<{ kind: 'waits' } | { kind: 'ended'; after: Arrival } | { kind: 'neither' }> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const after = gate.take('after');
    if (after) {
      return { kind: 'ended', after };
    }
    const { rows } = await watcher.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and $1 = any(pg_blocking_pids(pid))`,
      [pid],
    );
    if (rows[0]!.n > 0) {
      return { kind: 'waits' };
    }
    await sleep(2);
  }
  return { kind: 'neither' };
}

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once some other session waits on a lock (the action met the batch's row locks), `done()` holds, or after `ms`. */
async function lockWaitOrTimeout(ms: number, done: () => boolean): Promise<'lock' | 'done' | 'timeout'> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (done()) {
      return 'done';
    }
    const { rows } = await watcher.query<{ n: number }>(
      `select count(*)::int as n from pg_locks l join pg_stat_activity a on a.pid = l.pid where not l.granted and a.datname = current_database()`,
    );
    if (rows[0]!.n > 0) {
      return 'lock';
    }
    await sleep(2);
  }
  return 'timeout';
}

async function statusOf(requestId: string): Promise<DeletionStatus> {
  return app.deletions.status(requestId);
}

function settled(requestId: string): Promise<DeletionStatus> {
  return poll(async () => {
    const status = await statusOf(requestId);
    return status.state === 'completed' || status.state === 'failed' ? status : undefined;
  }, `request ${requestId} completed or failed`);
}

async function idleQueue(): Promise<void> {
  await poll(async () => {
    const counts = await app.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
    return Object.values(counts).every((n) => n === 0) || undefined;
  }, 'an idle deletion queue');
}

/** The blockers of a failed request, as kid ids (undefined: it did not fail on a validator). */
function blockersOf(status: DeletionStatus): number[] | undefined {
  const failed = status.errors.find((e) => e.state === 'failed');
  if (failed?.error.code !== DeletionBlockedError.CODE) {
    return undefined;
  }
  return ((failed.error.blockers ?? []) as { id: unknown }[]).map((b) => Number(b.id)).sort((a, b) => a - b);
}

const describeFailure = (status: DeletionStatus) => JSON.stringify(status.errors.map((e) => ({ path: e.path, state: e.state, ...e.error })));

async function checkCase(scenario: Case): Promise<void> {
  const entry = pool[scenario.configIndex]!;
  const { lane, config } = entry;
  const trace: string[] = [];
  if (process.env.PROPERTY_TRACE) {
    trace.push = (...lines: string[]) => {
      lines.forEach((line) => process.stderr.write(`${line}\n`));
      return Array.prototype.push.apply(trace, lines);
    };
    process.stderr.write(`--- ${describeScenario(scenario)}\n`);
  }
  const problems: string[] = [];
  const model = new MixModel(config, scenario.kids);
  const check = (condition: boolean, text: string) => {
    if (!condition) {
      problems.push(text);
      if (process.env.PROPERTY_TRACE) {
        process.stderr.write(`PROBLEM ${text}\n`);
      }
      throw new Broken();
    }
  };
  const expectState = async (where: string) => {
    const differences = [...diff(model, await dump(lane)), ...hookDiff(model, lane)];
    check(differences.length === 0, `${where}: the rows or hooks differ from the model's:\n    ${differences.join('\n    ')}`);
  };
  const act = async (action: Resolved, outcome: ActionOutcome, actual: Awaited<ReturnType<typeof perform>>, when: string) => {
    trace.push(`${when}: ${describeAction(action)} -> ${JSON.stringify(actual)}`);
    count(`action ${action.kind} ${actual.kind}`);
    check(sameOutcome(actual, outcome), `${when}: ${describeAction(action)} did ${JSON.stringify(actual)}, expected ${JSON.stringify(outcome)}`);
  };
  /** After a refusal: unflag every kid (model and database), then retry() the request. */
  const unflagAndRetry = async (requestId: string, where: string) => {
    const unflagged = model.unflagAll();
    await client.query(`update ${lane.tables.kid} set blocked = false where blocked`);
    trace.push(`${where}: unflagged ${unflagged.map((id) => `Kid#${id}`).join(', ')}, retry()`);
    await app.deletions.retry(requestId);
  };

  // Set-up: every lane's tables empty (the sweeper looks at all of them), the journal too.
  gate.abandon();
  await client.query([...lanes.flatMap((l) => [l.tables.kid, l.tables.parent]), 'deletion_orphan', 'deletion_request'].map((t) => `delete from ${t};`).join('\n'));
  DeleteJournal.clear();
  if (scenario.flushPath) {
    flushWatcher.onFlush = () => undefined;
  } else {
    delete flushWatcher.onFlush;
  }
  await client.query(
    `insert into ${lane.tables.parent} (id, tag) values ${PARENTS.map((p) => `(${p}, ${tagOf(p)})`).join(', ')};` +
      (scenario.kids.length > 0
        ? `insert into ${lane.tables.kid} (id, parent_id, tag, blocked) values ${scenario.kids.map((k) => `(${k.id}, ${k.parent}, ${k.tag}, ${k.blocked})`).join(', ')};`
        : ''),
  );
  let pendingAction: Promise<unknown> | undefined;
  let pendingHold: Holding | undefined;

  /**
   * A batch released while a held action's transaction is open (see `MixModel.held`): the action's
   * statement runs first (its row locked), the batch is released, and once it waits on that lock or
   * has ended (stopped at the gate before its step goes on), the action commits or rolls back.
   */
  const runHeld = async (arrival: Arrival, planned: Held, n: number): Promise<{ predicted: BatchOutcome; result: BatchResult }> => {
    const action = isPageAction(planned.action) ? model.onPage(planned.action) : planned.action;
    const expected = model.held(action, planned.commit);
    const when = `[held across batch ${n}${planned.commit ? '' : ', to be rolled back'}]`;
    trace.push(`[batch ${n}] model: ${JSON.stringify(expected.batch)}, ${expected.meets ? `waiting on Kid#${expected.row}, held` : 'meeting no held row'}`);
    if (expected.batch.kind === 'ok' && expected.batch.done) {
      gate.disarm(); // what follows the walk runs on its own
    }
    const holding = await hold(lane, action);
    pendingHold = holding;
    await act(action, expected.outcome, holding.outcome, when);
    if (holding.pid === undefined) {
      count(`held ${action.kind}: over before the batch (${holding.outcome.kind})`);
      arrival.release();
      return { predicted: expected.batch, result: await within(arrival.finished, 15_000, `batch ${n} to end`) };
    }
    gate.stopAfter();
    arrival.release();
    const met = await heldMet(holding.pid, 15_000);
    await holding.end(planned.commit);
    pendingHold = undefined;
    const saw = met.kind === 'waits' ? 'the batch waited on it' : met.kind === 'ended' ? 'the batch ended without meeting it' : 'the batch neither waited on it nor ended within 15 s';
    count(`held ${action.kind}${action.kind === 'remove' ? ` (${action.how})` : ''} ${planned.commit ? 'committed' : 'rolled back'}: ${met.kind === 'waits' ? 'waited on' : met.kind === 'ended' ? 'not met' : 'neither'}`);
    trace.push(`${when}: ${saw}; then ${planned.commit ? 'committed' : 'rolled back'}`);
    check(met.kind !== 'neither', `${when} ${describeAction(action)}: ${saw}`);
    const after = met.kind === 'ended' ? met.after : await gate.next('after', () => false, 15_000);
    after!.release();
    const result = await within(arrival.finished, 15_000, `batch ${n} to end`);
    check(
      (met.kind === 'waits') === expected.meets,
      `[batch ${n}] ${met.kind === 'waits' ? 'waited on' : 'did not meet'} the row ${describeAction(action)} held (Kid#${expected.row ?? '-'}), ` +
        `but the model says it ${expected.meets ? 'comes to that row (among the rows it reads)' : 'does not come to it'}`,
    );
    return { predicted: expected.batch, result };
  };

  try {
    // The deletion of P: accepted, validated in the request.
    gate.arm(lane.Parent.name);
    const accepted = model.accept();
    check(accepted.kind === 'accepted', `the model refuses the deletion of P: ${JSON.stringify(accepted)}`);
    const receipt = await app.deletions.destroy(lane.Parent, P).catch((error: unknown) => {
      problems.push(`destroy(Parent, ${P}) threw ${error instanceof Error ? `${error.name}: ${error.message}` : inspect(error)}`);
      throw new Broken();
    });
    check(receipt.status === 'pending' && receipt.requestId !== undefined, `the receipt is ${receipt.status}, but a queued policy is declared`);
    const requestId = receipt.requestId!;
    if (config.policy === 'nullifyThenPurge') {
      // The request recorded exactly the kids it detached; the purge follows the records' order.
      const { rows } = await client.query<{ row_id: string }>(`select row_id from deletion_orphan where request_id = $1 order by id`, [requestId]);
      const recorded = rows.map((r) => Number(r.row_id));
      const detached = accepted.kind === 'accepted' ? accepted.detached : [];
      check(
        JSON.stringify([...recorded].sort((a, b) => a - b)) === JSON.stringify(detached),
        `nullifyThenPurge recorded ${JSON.stringify(recorded)}, but detached ${JSON.stringify(detached)}`,
      );
      model.setRecords(recorded);
    }
    await expectState('after the request');

    // The walk, batch by batch, with the gaps' actions.
    const isSettled = async () => ['completed', 'failed'].includes((await statusOf(requestId)).state);
    for (let attempt = 0; !model.done; attempt++) {
      const arrival = await gate.next('batch', isSettled, 15_000);
      if (!arrival) {
        // The request ended before the model's walk did: acceptable only when the model's remaining
        // batches would delete nothing and refuse nothing (then the rows are the same).
        const status = await statusOf(requestId);
        const under = (await dump(lane)).kids.filter((k) => k.parent === P).map((k) => `Kid#${k.id}`);
        const rest = model.finishWalk();
        const ids = (list: readonly number[]) => list.map((id) => `Kid#${id}`).join(', ');
        check(
          status.state === 'completed' && rest.removed.length === 0 && rest.blockers.length === 0,
          `[batch ${attempt + 1}] the request is ${status.state} ${describeFailure(status)}, but the model expects another batch: ` +
            (rest.removed.length > 0 ? `its walk still deletes ${ids(rest.removed)}` : 'its walk goes on') +
            (rest.blockers.length > 0 ? `, then a batch refused by ${ids(rest.blockers)}` : '') +
            `; under the deleted Parent#${P} now: ${under.join(', ') || 'none'}`,
        );
        count('walk over early, nothing left for it');
        trace.push(`[batch ${attempt + 1}] none: the request completed, the model's remaining batches delete nothing`);
        break;
      }
      await expectState(`[before batch ${attempt + 1}]`);
      const planned: Gap = scenario.gaps[attempt] ?? { between: [], during: null };
      for (const action of planned.between) {
        const outcome = model.apply(action);
        await act(action, outcome, await perform(lane, action), `[before batch ${attempt + 1}]`);
      }
      let predicted: BatchOutcome;
      let result: BatchResult;
      if (planned.held) {
        ({ predicted, result } = await runHeld(arrival!, planned.held, attempt + 1));
      } else {
        // An action on the batch's page picks its row now; a batch that checks no rows (deleteAllAsync
        // with no validator: one statement; an empty page of nullifyThenPurge's records) never holds
        // them for an action: that one runs before it.
        const resolvedDuring = planned.during && isPageAction(planned.during) ? model.onPage(planned.during) : planned.during;
        const gap: Gap<Resolved, Resolved> = { between: [], during: model.checksNextBatch() ? resolvedDuring : null };
        if (resolvedDuring && !gap.during) {
          const outcome = model.apply(resolvedDuring);
          await act(resolvedDuring, outcome, await perform(lane, resolvedDuring), `[before batch ${attempt + 1}, which holds no rows]`);
        }
        predicted = model.batch();
        trace.push(`[batch ${attempt + 1}] model: ${JSON.stringify(predicted)}`);
        if (predicted.kind === 'ok' && predicted.done) {
          gate.disarm(); // what follows the walk runs on its own
        }
        let during: Promise<Awaited<ReturnType<typeof perform>>> | undefined;
        if (gap.during) {
          gate.stopDuring();
        }
        let batchOver = false;
        void arrival!.finished.then(() => (batchOver = true));
        arrival!.release();
        if (gap.during) {
          // The batch stops once it holds its rows, unless it ends before (nothing to validate).
          const holding = await gate.next('during', () => batchOver, 15_000);
          gate.cancelDuring();
          during = perform(lane, gap.during);
          pendingAction = during;
          if (holding) {
            // Until the action either ends (it touched no row the batch holds) or waits on the batch's
            // locks (then it goes on once the batch commits, and finds its row gone).
            let performed = false;
            void during.finally(() => (performed = true));
            const met = await lockWaitOrTimeout(10_000, () => performed);
            count(`during ${gap.during.kind}: ${met === 'lock' ? 'waited on the batch' : met === 'done' ? 'went through' : 'neither'}`);
            holding.release();
          } else {
            count(`during ${gap.during.kind}: the batch held no rows`);
          }
        }
        result = await within(arrival!.finished, 15_000, `batch ${attempt + 1} to end`);
        if (gap.during) {
          const outcome = model.apply(gap.during);
          await act(gap.during, outcome, await during!, `[while batch ${attempt + 1} held its rows]`);
          pendingAction = undefined;
        }
      }
      if (predicted.kind === 'blocked') {
        count('batch refused');
        check(!result.ok, `[batch ${attempt + 1}] went through, but ${predicted.blockers.map((id) => `Kid#${id}`).join(', ')} is blocked`);
        const status = await settled(requestId);
        check(status.state === 'failed', `[batch ${attempt + 1}] refused, but the request is ${status.state}`);
        check(
          JSON.stringify(blockersOf(status)) === JSON.stringify(predicted.blockers),
          `[batch ${attempt + 1}] the request failed with ${describeFailure(status)}, expected DeletionBlockedError naming ${predicted.blockers.map((id) => `Kid#${id}`).join(', ')}`,
        );
        // retry() as soon as the request reads failed (the rolled-back batch is checked at its next arrival).
        await unflagAndRetry(requestId, `[after batch ${attempt + 1}]`);
        continue;
      }
      count('batch');
      check(result.ok, `[batch ${attempt + 1}] failed (${result.error instanceof Error ? `${result.error.name}: ${result.error.message}` : inspect(result.error)}), but the model deletes ${JSON.stringify(predicted.removed)}`);
    }
    gate.disarm();

    // The kids left under P: the cascade's (tombstone mode) or the sweeper's.
    const left = model.leftovers();
    count(`leftovers ${left.via} ${left.kids.length > 0 ? 'some' : 'none'}`);
    trace.push(`after the walk: left under P ${JSON.stringify(left)}`);
    let status = await settled(requestId);
    if (left.via === 'cascade' && left.blocked.length > 0) {
      check(status.state === 'failed' && JSON.stringify(blockersOf(status)) === JSON.stringify(left.blocked), `the request is ${status.state} ${describeFailure(status)}, but a kid left under P is blocked: ${JSON.stringify(left.blocked)}`);
      await unflagAndRetry(requestId, 'after the walk');
      status = await settled(requestId);
    }
    check(status.state === 'completed', `after the walk, the request is ${status.state}: ${describeFailure(status)}`);
    if (left.via === 'sweeper') {
      const report = await app.module.get(OrphanSweeper, { strict: false }).sweep();
      const mine = report.relations.find((r) => r.relation === `${lane.Parent.name}.kids`);
      trace.push(`sweep: ${JSON.stringify(mine)}`);
      check(mine?.missingParents === (left.kids.length > 0 ? 1 : 0), `the sweeper reports ${JSON.stringify(mine)}, but ${left.kids.length} kid(s) are left under the deleted Parent#${P}`);
      const others = report.relations.filter((r) => r !== mine && r.missingParents > 0);
      check(others.length === 0, `the sweeper finds missing parents elsewhere: ${JSON.stringify(others)}`);
      if (mine?.requestId) {
        let swept = await settled(mine.requestId);
        if (left.blocked.length > 0) {
          check(swept.state === 'failed' && blockersOf(swept) !== undefined, `the sweep is ${swept.state} ${describeFailure(swept)}, but ${JSON.stringify(left.blocked)} is blocked`);
          await unflagAndRetry(mine.requestId, 'after the sweep');
          swept = await settled(mine.requestId);
        }
        check(swept.state === 'completed', `the sweep is ${swept.state}: ${describeFailure(swept)}`);
      }
    } else {
      check(left.via === 'cascade' || left.kids.length === 0, `kids are left under the deleted Parent#${P} with nothing to remove them: ${JSON.stringify(left.kids)}`);
    }
    model.finish();
    await idleQueue();
    await expectState('in the end');
    const { rows } = await client.query<{ state: string; n: number }>(`select state, count(*)::int as n from deletion_request group by state`);
    const open = rows.filter((r) => r.state !== 'completed');
    check(open.length === 0, `in the end, requests are left ${JSON.stringify(open)}`);
    const { rows: orphans } = await client.query<{ n: number }>(`select count(*)::int as n from deletion_orphan`);
    check(orphans[0]!.n === 0, `in the end, ${orphans[0]!.n} orphan record(s) are left`);
  } catch (error) {
    if (!(error instanceof Broken)) {
      problems.push(`the case threw ${error instanceof Error ? `${error.name}: ${error.message}` : inspect(error)}`);
    }
  } finally {
    // Let any batch still waiting go, and the queue settle, before the next case empties the tables.
    await pendingHold?.end(false).catch(() => undefined);
    gate.abandon();
    await pendingAction?.catch(() => undefined);
    await idleQueue().catch(() => undefined);
  }
  if (problems.length > 0) {
    throw new Error([`invariant broken on configuration #${scenario.configIndex} (${describeConfig(config)}):`, ...problems.map((p) => `  - ${p}`), 'trace:', ...trace.map((t) => `  ${t}`)].join('\n'));
  }
}

const TIMEOUT = Math.max(600_000, PROPERTY_RUNS_EACH * 5_000);

describe('a queued cascade interleaved with concurrent actions (fast-check)', () => {
  it('every lane has its foreign key as configured, and the doctor finds no error', async () => {
    const errors = (await app.deletions.doctor()).filter((f) => f.severity === 'error');
    expect(errors).toEqual([]);
    const { rows } = await client.query<{ tbl: string; action: string }>(`select conrelid::regclass::text as tbl, confdeltype as action from pg_constraint where contype = 'f'`);
    const found = rows.filter((r) => r.tbl.startsWith('mix')).sort((a, b) => a.tbl.localeCompare(b.tbl));
    const wanted = pool.filter((p) => p.lane.shape.fk).map((p) => ({ tbl: p.lane.tables.kid, action: 'a' })).sort((a, b) => a.tbl.localeCompare(b.tbl));
    expect(found).toEqual(wanted);
  });

  // One property per policy, with and without tombstone mode, with and without the kid's validator:
  // one's counterexample cannot hide another's.
  const properties = POLICIES.flatMap((policy) =>
    [false, true].flatMap((tombstone) =>
      [true, false].map((validated) => [`${policy}${tombstone ? ', tombstone on the parent' : ''}${validated ? '' : ', no validator on the kid'}`, policy, tombstone, validated] as const),
    ),
  );
  describe.each(properties)('under %s', (_title, policy, tombstone, validated) => {
    const indexes = pool.filter((p) => p.config.policy === policy && p.config.tombstone === tombstone && p.config.validated === validated).map((p) => p.index);
    it(
      `moves, direct deletions, inserts and flags between, during and held across the batches end as the model says, every hook once (${PROPERTY_RUNS_EACH} runs)`,
      async () => {
        await fc.assert(fc.asyncProperty(genCase(indexes).map(toScenario), (scenario) => checkCase(scenario)), {
          numRuns: PROPERTY_RUNS_EACH,
          seed: SEED,
          ...(PATH ? { path: PATH } : {}),
        });
      },
      TIMEOUT,
    );
  });
});
