import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import * as fc from 'fast-check';
import { Redis } from 'ioredis';
import { DeletionBlockedError, DeletionRestrictedError, DeletionTargetNotFoundError, definePolicy, type PolicyDefinition } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { REDIS_URL, databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { coverageConfigs, generatedCase, randomConfigs, toScenario } from './arbitraries.js';
import { getLanes, type Lane } from './fixtures/node-lanes.js';
import {
  describeConfig,
  describeExpected,
  diffRows,
  expectedSteps,
  hasQueuedRestrict,
  isSynchronous,
  key,
  refusedOnlyByQueuedRestrict,
  syncCounterpart,
  type Deletion,
  type Expected,
  type PolicyConfig,
  type Row,
  type Scenario,
} from './model.js';
import { LaneDatabase, type StoredRow } from './support/lane-database.js';

/**
 * Property-based tests of the deletion policies: random trees of rows (depth up to 4, fan-out
 * 0-3, a few trees rooted at any level), a random policy on each relation, random validators
 * (rows flagged `blocked` on random levels), tombstone mode on some parents, and random rows to
 * delete one after the other, the queue drained after each. After each deletion, on the real
 * database:
 *
 *  - no under-deletion: nothing remains that the policies say must go;
 *  - no over-deletion: no row outside the deleted subtree is deleted or changed;
 *  - the queued policies end in the same rows as their synchronous counterparts;
 *  - a refused deletion (validator or `restrict`) changes nothing and enqueues nothing;
 *  - and plan() agrees with what the deletion does, writing nothing.
 *
 * The expected rows come from a pure model (model.ts). Each configuration of the pool has its own
 * lane of tables (fixtures/node-lanes.ts), and so does its all-synchronous counterpart: one
 * application serves the whole pool, and a case runs on both lanes of its configuration.
 *
 * Environment:
 *  - PROPERTY_RUNS: cases per property (default 200; `npm run test:property` runs 10,000);
 *  - PROPERTY_SEED: replays a run (the pool of configurations and the cases); printed at start;
 *  - PROPERTY_PATH: with the seed, replays the shrunk counterexample fast-check printed (select the
 *    property with `-t`);
 *  - PROPERTY_CONFIGS: random configurations added to the seven that give every relation every
 *    policy (default 13);
 *  - PROPERTY_CONCURRENCY: the worker's concurrency (default 1: runs replay exactly);
 *  - PROPERTY_DATABASE: the database (and queue prefix) to use, `deletion_prop_*` (default
 *    deletion_prop_invariants), so a long run can go on beside the normal suite.
 */
const RUNS = intFromEnv('PROPERTY_RUNS', 200);
const SEED = process.env.PROPERTY_SEED ? intFromEnv('PROPERTY_SEED', 0) : Math.floor(Math.random() * 0x7fffffff);
const PATH = process.env.PROPERTY_PATH || undefined;
const RANDOM_CONFIGS = intFromEnv('PROPERTY_CONFIGS', 13);
const CONCURRENCY = intFromEnv('PROPERTY_CONCURRENCY', 1);
const DATABASE = process.env.PROPERTY_DATABASE || 'deletion_prop_invariants';
if (!DATABASE.startsWith('deletion_prop_')) {
  throw new Error(`PROPERTY_DATABASE must start with deletion_prop_, got "${DATABASE}"`);
}
const MAX_BLOCKERS = 20;

interface PoolEntry {
  readonly config: PolicyConfig;
  readonly lane: Lane;
  /** The all-synchronous counterpart's lane; absent when the configuration is synchronous already. */
  readonly counterpart?: { readonly config: PolicyConfig; readonly lane: Lane };
}

const configs = [...coverageConfigs(), ...randomConfigs(SEED, RANDOM_CONFIGS)];
const lanes = getLanes(configs.length + configs.filter((c) => !isSynchronous(c)).length);
const pool: PoolEntry[] = (() => {
  let next = configs.length;
  return configs.map((config, i) => ({
    config,
    lane: lanes[i]!,
    ...(isSynchronous(config) ? {} : { counterpart: { config: syncCounterpart(config), lane: lanes[next++]! } }),
  }));
})();

function policiesOf(lane: Lane, config: PolicyConfig): PolicyDefinition[] {
  const { a, b, c, d } = config.relations;
  return [
    definePolicy(lane.L0, { a, b }, config.tombstone ? { tombstone: 'deletedAt' } : {}),
    definePolicy(lane.L1a, { c }),
    definePolicy(lane.L2, { d }),
  ];
}

let app: DeletionTestApp;
let db: LaneDatabase;
let redis: Redis;
const tally = new Map<string, number>();

beforeAll(async () => {
  console.log(
    [
      `deletion properties: seed ${SEED} (PROPERTY_SEED=${SEED} replays), ${RUNS} runs, worker concurrency ${CONCURRENCY}, ${pool.length} configurations on ${lanes.length} lanes:`,
      ...pool.map((p, i) => `  #${i} ${describeConfig(p.config)}${p.counterpart ? '' : ' (synchronous)'}`),
    ].join('\n'),
  );
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: lanes.flatMap((lane) => lane.schemas),
    deletion: {
      batchSize: 2,
      policies: pool.flatMap((p) => [...policiesOf(p.lane, p.config), ...(p.counterpart ? policiesOf(p.counterpart.lane, p.counterpart.config) : [])]),
      // A transient failure gets a quick second chance; cases must not wait for long back-offs.
      queue: { attempts: 2, backoffMs: 10 },
      worker: { concurrency: CONCURRENCY },
      validation: { maxBlockers: MAX_BLOCKERS },
      // Checked by a test below, without logging a warning per lane at boot.
      doctor: 'off',
    },
  });
  // A failed queued cascade is logged at error level by the module; here the properties report it.
  Logger.overrideLogger(['fatal']);
  db = await LaneDatabase.connect(databaseUrl(DATABASE));
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  if (tally.size > 0) {
    console.log(`deletion properties: deletions per outcome (all lanes, shrinking included): ${[...tally].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  await db?.close();
  redis?.disconnect();
  await app?.close();
});

/** What one lane did with one deletion: its outcome and its rows afterwards. */
interface Observation {
  outcome: 'missing' | 'blocked' | 'restricted' | 'completed' | 'queued' | 'failed' | 'error';
  rows: StoredRow[];
  detail: string;
}

/**
 * The queue's job counts, and the id of the last entry of its event stream: a job added (then
 * perhaps run and removed at once) leaves events there, so an unchanged id means nothing was enqueued.
 */
async function queueMark(): Promise<string> {
  const counts = await app.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed');
  const [last] = await redis.xrevrange(app.queue.keys.events, '+', '-', 'COUNT', 1);
  return `jobs ${JSON.stringify(counts)}, last queue event ${last?.[0] ?? 'none'}`;
}

async function waitForIdleQueue(): Promise<void> {
  await waitUntil(
    async () => {
      const counts = await app.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      return Object.values(counts).every((n) => n === 0);
    },
    20_000,
    'an idle deletion queue',
  );
}

const asRows = (rows: readonly StoredRow[]): Row[] => rows.map(({ level, id, parent, tag, blocked }) => ({ level, id, parent, tag, blocked }));
const tombstoned = (rows: readonly StoredRow[]) => rows.filter((r) => r.tombstoned).map((r) => `changed: ${key(r)} is left tombstoned`);
const REFUSALS = [
  [DeletionTargetNotFoundError, 'missing'],
  [DeletionBlockedError, 'blocked'],
  [DeletionRestrictedError, 'restricted'],
] as const;

/**
 * Runs one deletion on one lane, whose rows are the deletion's rows, and checks it against the
 * model; problems go to `fail`. Returns what the lane did and the rows it ended in.
 */
async function deleteOnLane(lane: Lane, deletion: Deletion, expected: Expected, fail: (text: string) => void): Promise<Observation> {
  const before = await db.dump(lane);
  const queueBefore = await queueMark();
  const bookkeepingBefore = await db.bookkeeping();
  const entity = lane.classes[deletion.target.level];

  // plan() previews the deletion (DESIGN 5): allowed exactly when it goes through, and writes nothing.
  if (expected.kind !== 'missing') {
    const plan = await app.deletions.plan(entity, deletion.target.id);
    if (plan.allowed !== (expected.kind === 'deleted')) {
      fail(`plan() says allowed: ${plan.allowed} (blockers ${JSON.stringify(plan.blockers)}), but the deletion is ${describeExpected(expected)}`);
    }
    const afterPlan = diffRows(asRows(before), asRows(await db.dump(lane)));
    if (afterPlan.length > 0) {
      fail(`plan() changed rows:\n    ${afterPlan.join('\n    ')}`);
    }
  }

  const result = await app.deletions.destroy(entity, deletion.target.id).then(
    (receipt) => ({ receipt }),
    (error: unknown) => ({ error }),
  );

  if ('error' in result) {
    const error = result.error as Error;
    const refused = REFUSALS.find(([type]) => error instanceof type)?.[1];
    const after = await db.dump(lane);
    const observation: Observation = { outcome: refused ?? 'error', rows: after, detail: `${error?.name}: ${error?.message}` };
    if (!refused) {
      fail(`destroy() threw ${observation.detail}`);
      return observation;
    }
    if (refused !== expected.kind && !(refused === 'restricted' && expected.kind === 'blocked' && expected.restricted.length > 0)) {
      // (When both a validator and a `restrict` refuse, either error will do.)
      fail(`destroy() was refused (${observation.detail}), but the deletion is ${describeExpected(expected)}`);
    } else if (error instanceof DeletionBlockedError && expected.kind === 'blocked') {
      checkBlockers(error, lane, expected, fail);
    } else if (error instanceof DeletionRestrictedError && expected.kind === 'restricted') {
      checkRestricted(error, lane, expected, fail);
    }
    // A refused deletion changes nothing and enqueues nothing.
    const changes = [...diffRows(asRows(before), asRows(after)), ...tombstoned(after)];
    if (changes.length > 0) {
      fail(`the refused deletion changed rows:\n    ${changes.join('\n    ')}`);
    }
    const bookkeepingAfter = await db.bookkeeping();
    if (JSON.stringify(bookkeepingAfter) !== JSON.stringify(bookkeepingBefore)) {
      fail(`the refused deletion wrote deletion requests or orphan records: ${JSON.stringify(bookkeepingBefore)} -> ${JSON.stringify(bookkeepingAfter)}`);
    }
    const queueAfter = await queueMark();
    if (queueAfter !== queueBefore) {
      fail(`the refused deletion enqueued something: ${queueBefore} -> ${queueAfter}`);
    }
    return observation;
  }

  const { receipt } = result;
  const observation: Observation = { outcome: receipt.status === 'pending' ? 'queued' : 'completed', rows: [], detail: `receipt ${receipt.status}` };
  if (receipt.status === 'pending') {
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 20_000);
    await waitForIdleQueue();
    if (status.state !== 'completed') {
      observation.outcome = 'failed';
      observation.detail = `queued cascade ${status.state}: ${JSON.stringify(status.errors.map((e) => ({ path: e.path, ...e.error })))}`;
    }
  }
  observation.rows = await db.dump(lane);
  if (expected.kind !== 'deleted') {
    fail(`destroy() went through (${observation.detail}), but the deletion is ${describeExpected(expected)}`);
    return observation;
  }
  if (observation.outcome === 'failed') {
    fail(observation.detail);
  }
  if (expected.queue === 'required' && receipt.status !== 'pending') {
    fail(`the receipt is ${receipt.status}, but part of the cascade is queued`);
  }
  if (expected.queue === 'forbidden' && receipt.status !== 'completed') {
    fail(`the receipt is ${receipt.status}, but nothing is queued`);
  }
  // No under-deletion, no over-deletion, no other change: exactly the model's rows.
  const differences = [...diffRows(expected.rows, asRows(observation.rows)), ...tombstoned(observation.rows)];
  if (differences.length > 0) {
    fail(`the rows after the deletion differ from the model's:\n    ${differences.join('\n    ')}`);
  }
  // Once completed, every request the deletion wrote is completed and its orphan records are gone.
  const bookkeepingAfter = await db.bookkeeping();
  const open = Object.entries(bookkeepingAfter.requests).filter(([state, n]) => state !== 'completed' && n !== (bookkeepingBefore.requests[state] ?? 0));
  if (observation.outcome !== 'failed' && (open.length > 0 || bookkeepingAfter.orphans !== bookkeepingBefore.orphans)) {
    fail(`after completion, deletion requests and orphan records went from ${JSON.stringify(bookkeepingBefore)} to ${JSON.stringify(bookkeepingAfter)}`);
  }
  return observation;
}

function checkBlockers(error: DeletionBlockedError, lane: Lane, expected: Extract<Expected, { kind: 'blocked' }>, fail: (text: string) => void): void {
  const allowed = new Set(expected.blockers.map((r) => `${lane.classes[r.level].name}#${r.id}`));
  if (error.code !== 'DELETION_BLOCKED') {
    fail(`DeletionBlockedError code ${error.code}`);
  }
  if (error.total !== expected.blockers.length) {
    fail(`DeletionBlockedError total ${error.total}, expected ${expected.blockers.length} (${expected.blockers.map(key).join(', ')})`);
  }
  if (error.blockers.length !== Math.min(expected.blockers.length, MAX_BLOCKERS)) {
    fail(`DeletionBlockedError lists ${error.blockers.length} blockers, expected ${Math.min(expected.blockers.length, MAX_BLOCKERS)}`);
  }
  const strangers = error.blockers.filter((b) => !allowed.has(`${b.entity}#${String(b.id)}`));
  if (strangers.length > 0) {
    fail(`DeletionBlockedError names rows that are not blocked or not deleted: ${JSON.stringify(strangers)}`);
  }
}

function checkRestricted(error: DeletionRestrictedError, lane: Lane, expected: Extract<Expected, { kind: 'restricted' }>, fail: (text: string) => void): void {
  if (error.code !== 'DELETION_RESTRICTED') {
    fail(`DeletionRestrictedError code ${error.code}`);
  }
  const parents = expected.violations.map((v) => `${lane.classes[v.parent.level].name}.${v.relation}`);
  if (!parents.includes(`${error.entity}.${error.relation}`)) {
    fail(`DeletionRestrictedError names ${error.entity}.${error.relation}, expected one of ${parents.join(', ')}`);
  }
}

/**
 * One case: its deletions on the configuration's lane, then on its synchronous counterpart's,
 * each checked against the model, and the two lanes compared after every deletion.
 */
async function checkCase(scenario: Scenario & { configIndex: number }): Promise<void> {
  const entry = pool[scenario.configIndex]!;
  const problems: string[] = [];
  const runs = [{ lane: entry.lane, config: entry.config, name: `lane ${entry.lane.index}` }];
  if (entry.counterpart) {
    runs.push({ lane: entry.counterpart.lane, config: entry.counterpart.config, name: `lane ${entry.counterpart.lane.index}, synchronous counterpart` });
  }
  await db.clear(runs.map((r) => r.lane));
  const observed: Observation[][] = [];
  for (const run of runs) {
    const steps = expectedSteps({ ...scenario, config: run.config });
    await db.insert(run.lane, scenario.rows);
    const observations: Observation[] = [];
    const problemsBefore = problems.length;
    for (const [i, { deletion, expected }] of steps.entries()) {
      const where = `[${run.name}, deletion ${i + 1} of ${key(deletion.target)}]`;
      const observation = await deleteOnLane(run.lane, deletion, expected, (text) => problems.push(`${where} ${text}`));
      count(observation.outcome);
      observations.push(observation);
      if (problems.length > problemsBefore) {
        break; // the next deletions would start from other rows than the model's
      }
    }
    observed.push(observations);
  }
  // The queued policies end in the same rows as their synchronous counterparts, deletion after deletion.
  if (observed.length === 2) {
    const [queued, synchronous] = observed as [Observation[], Observation[]];
    const alike = (o: Observation) => (o.outcome === 'queued' ? 'completed' : o.outcome);
    for (let i = 0; i < Math.min(queued.length, synchronous.length); i++) {
      const differences = diffRows(asRows(synchronous[i]!.rows), asRows(queued[i]!.rows));
      if (alike(queued[i]!) !== alike(synchronous[i]!) || differences.length > 0) {
        problems.push(
          `[deletion ${i + 1}] queued and synchronous policies disagree: queued ${queued[i]!.outcome} (${queued[i]!.detail}), synchronous ${synchronous[i]!.outcome} (${synchronous[i]!.detail})` +
            (differences.length > 0 ? `; the queued lane's rows against the synchronous lane's:\n    ${differences.join('\n    ')}` : ''),
        );
        break;
      }
    }
  }
  if (problems.length > 0) {
    const steps = expectedSteps(scenario);
    throw new Error(
      [
        `${problems.length} invariant(s) broken on configuration #${scenario.configIndex}:`,
        ...problems.map((p) => `  - ${p}`),
        'model:',
        ...steps.map(({ deletion, expected }, i) => `  deletion ${i + 1} of ${key(deletion.target)}: ${describeExpected(expected)}`),
      ].join('\n'),
    );
  }
}

function count(name: string): void {
  tally.set(name, (tally.get(name) ?? 0) + 1);
}

const scenarios = (configIndexes: readonly number[]) => generatedCase(configIndexes).map((generated) => toScenario(generated, pool.map((p) => p.config)));
const parameters = (): fc.Parameters<[Scenario & { configIndex: number }]> => ({ numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}) });
const TIMEOUT = Math.max(600_000, RUNS * 3_000);
const refusedOnlyLater = (scenario: Scenario) => expectedSteps(scenario).some(({ expected }) => refusedOnlyByQueuedRestrict(expected));

describe('deletion policies on random trees (fast-check)', () => {
  it('the pool covers every policy on every relation, and the schema doctor finds no error on any lane', async () => {
    for (const relation of ['a', 'b', 'c', 'd'] as const) {
      expect(new Set(pool.map((p) => p.config.relations[relation].policy)).size).toBe(7);
    }
    const errors = (await app.deletions.doctor()).filter((f) => f.severity === 'error');
    expect(errors).toEqual([]);
  });

  it(
    `every deletion ends as the model says, and as its synchronous counterpart (${RUNS} runs)`,
    async () => {
      await fc.assert(
        fc.asyncProperty(scenarios(pool.map((_, i) => i)), async (scenario) => {
          // Such cases belong to the next property, which fails until the library checks these restricts up front.
          fc.pre(!refusedOnlyLater(scenario));
          await checkCase(scenario);
        }),
        parameters(),
      );
    },
    TIMEOUT,
  );

  /*
   * A `restrict` relation reached only through a queued policy must refuse the deletion in the
   * request, as its synchronous counterpart does (DESIGN 2), and as plan() reports (DESIGN 5).
   * Found by this suite: L0.a=nullifyThenPurge, L1a.c=restrict, rows L0#1 ─a→ L1a#1 ─c→ L2#1,
   * delete L0#1 used to be accepted and then fail in the queue, leaving L1a#1 detached.
   */
  it(
    `a restrict reached only through a queued policy refuses the deletion in the request, as its synchronous counterpart does (${RUNS} runs)`,
    async () => {
      const candidates = pool.flatMap((p, i) => (hasQueuedRestrict(p.config) ? [i] : []));
      expect(candidates.length).toBeGreaterThan(0);
      await fc.assert(
        fc.asyncProperty(scenarios(candidates), async (scenario) => {
          fc.pre(refusedOnlyLater(scenario));
          await checkCase(scenario);
        }),
        parameters(),
      );
    },
    TIMEOUT,
  );
});

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${name} must be an integer, got "${raw}"`);
  }
  return value;
}
