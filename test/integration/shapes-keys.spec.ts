import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  ASYNC_POLICIES,
  DeletionBlockedError,
  DeletionRestrictedError,
  OrphanSweeper,
  POLICY_NAMES,
  definePolicy,
  type DeletionStatus,
  type PlannedPath,
  type PolicyName,
} from '../../lib/index.js';
import { OutboxRelay } from '../../lib/outbox/outbox-relay.js';
import { BLOCKED_REASON, KEY_KINDS, VETOED_REASON, keyEntities, kidRelation, type KeyEntities, type KeyKind, type KeyValue } from '../fixtures/shapes/keys.entities.js';
import { KEY_TRIGGERS, KeySeeder, outboxFootprint, readTables, rootRequestIds, tablesAfter, textKey, truncate, type SeededParent } from '../fixtures/shapes/keys.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Issue 11, "Keys": every policy, both validator forms, `status()`, `plan()`, the relay and the
 * sweeper, with integer, bigint (as JS bigint, number and string), uuid and varchar primary and
 * foreign keys. One app per key type, each on its own classes and database; every policy sits on
 * its own relation of the same parent, so one app covers them all (see keys.entities.ts).
 *
 * Keys of the bigint and bigint-as-string types are past 2^53: a key that goes through a JS number
 * anywhere (JSON, a cursor, a blocker) comes back as another row's key.
 */
const SHAPES = Object.values(KEY_KINDS).map((kind) => [kind.name, keyEntities(kind)] as const);

const isAsync = (policy: PolicyName) => (ASYNC_POLICIES as readonly PolicyName[]).includes(policy);
/** Policies under which the children are deleted, so their validators must run. */
const DELETING = POLICY_NAMES.filter((p) => p !== 'nullify' && p !== 'restrict');
const EFFECT = { destroy: 'delete', deleteAll: 'delete', nullify: 'detach', restrict: 'keep', destroyAsync: 'delete', deleteAllAsync: 'delete', nullifyThenPurge: 'delete' } as const satisfies Record<
  PolicyName,
  'delete' | 'detach' | 'keep'
>;
const VALIDATOR_FORMS = [
  ['set-based', 'blocked', BLOCKED_REASON],
  ['instance', 'vetoed', VETOED_REASON],
] as const;

/** `status().ids` holds keys as JSON values: integers as numbers, bigint as decimal strings, uuid and varchar as strings. */
function expectJsonIds(ids: unknown[], kind: KeyKind, key: KeyValue): void {
  if (kind.json === 'number') {
    expect(ids).toEqual([key]);
  } else if (kind.json === 'string') {
    expect(ids).toEqual([String(key)]);
  } else {
    // bigint mapped as number: either JSON form holds it without loss.
    expect(ids).toHaveLength(1);
    expect(['number', 'string']).toContain(typeof ids[0]);
    expect(String(ids[0])).toBe(String(key));
  }
}

/** Blocker ids compared as text: the key's own JS type or its JSON form, but the same value. */
const blockersAsText = (blockers: readonly { entity: string; id: unknown; path: string; reason: string }[]) =>
  blockers.map((b) => ({ entity: b.entity, id: typeof b.id === 'object' && b.id !== null ? b.id : String(b.id), path: b.path, reason: b.reason }));

describe.each(SHAPES)('%s keys', (_name, entities: KeyEntities) => {
  const { kind, Parent } = entities;
  const parentName = Parent.name;
  const pathOf = (policy: PolicyName) => `${parentName}.${kidRelation(policy)}`;
  const kidName = (policy: PolicyName) => entities.kids[policy].name;
  const seeder = new KeySeeder(entities);
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_shapes_keys_${kind.prefix.toLowerCase()}`,
      entities: entities.schemas,
      deletion: {
        // Two children per page: three children take two keyset pages, so cursors of this key type are stored and reused.
        batchSize: 2,
        relay: { intervalMs: 0, graceMs: 0 }, // run by the relay test itself
        policies: [definePolicy(Parent, Object.fromEntries(POLICY_NAMES.map((p) => [kidRelation(p), p])))],
      },
    });
  });
  afterAll(() => app?.close());
  beforeEach(async () => truncate(app.em(), entities));

  /** A bystander with children everywhere, the first of each refusing by both validators, and one detached child per table. */
  async function seedSurroundings(): Promise<SeededParent> {
    const bystander = await seeder.everywhere(app.em(), 2);
    for (const policy of POLICY_NAMES) {
      await seeder.mark(app.em(), policy, bystander.kids[policy][0]!, 'blocked');
      await seeder.mark(app.em(), policy, bystander.kids[policy][0]!, 'vetoed');
      await seeder.kids(app.em(), policy, null, 1);
    }
    return bystander;
  }

  async function completeRootRequests(): Promise<DeletionStatus[]> {
    const statuses: DeletionStatus[] = [];
    for (const id of await rootRequestIds(app.em())) {
      statuses.push(await waitForState(app.deletions, id));
    }
    return statuses;
  }

  describe.each(KEY_TRIGGERS)('through %s', (_trigger, trigger) => {
    it.each(POLICY_NAMES)('%s reaches the deleted parent’s children only', async (policy) => {
      const victim = await seeder.parent(app.em(), { [policy]: 3 }, 'victim');
      await seedSurroundings();
      const before = await readTables(app.em(), entities);

      if (policy === 'restrict') {
        const outbox = await outboxFootprint(app);
        const error = await trigger.run(app, Parent, victim.key).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DeletionRestrictedError);
        const restricted = error as DeletionRestrictedError;
        expect(restricted.getStatus()).toBe(409);
        expect(restricted).toMatchObject({ code: 'DELETION_RESTRICTED', entity: parentName, relation: kidRelation(policy), count: 3 });
        expect(String(restricted.id)).toBe(textKey(victim.key));
        expect(() => JSON.stringify(restricted.getResponse())).not.toThrow();
        expect(await readTables(app.em(), entities)).toEqual(before);
        expect(await outboxFootprint(app)).toEqual(outbox);
        return;
      }

      const receipt = await trigger.run(app, Parent, victim.key);
      const roots = await rootRequestIds(app.em());
      if (isAsync(policy)) {
        expect(roots).toHaveLength(1);
      }
      if (receipt) {
        expect(receipt.status).toBe(roots.length > 0 ? 'pending' : 'completed');
        expect(receipt.requestId).toBe(roots[0]);
      }
      const statuses = await completeRootRequests();
      for (const status of statuses) {
        expect(status).toMatchObject({ entity: parentName, state: 'completed', errors: [] });
        expectJsonIds(status.ids, kind, victim.key);
      }
      if (isAsync(policy)) {
        const [status] = statuses;
        expect(status!.progress).toContainEqual({ path: pathOf(policy), entity: kidName(policy), policy, processed: 3, done: true });
        expect(status!.progress.every((p) => p.done)).toBe(true);
        expect(status!.counts).toMatchObject({ processed: 3, failed: 0 });
      }
      expect(await readTables(app.em(), entities)).toEqual(tablesAfter(entities, before, victim.key, policy, EFFECT[policy]));
    });
  });

  // Every form with every deleting policy; each pair through one of the two triggers, in turn, so both forms meet both triggers.
  const VALIDATOR_CASES = DELETING.flatMap((policy, p) =>
    VALIDATOR_FORMS.map(([form, column, reason], f) => [policy, form, KEY_TRIGGERS[(p + f) % 2]![0], column, reason, KEY_TRIGGERS[(p + f) % 2]![1]] as const),
  );

  it.each(VALIDATOR_CASES)('%s: the %s validator refuses (through %s) with the refusing child’s key, and nothing changes', async (policy, _form, _trigger, column, reason, trigger) => {
    const victim = await seeder.parent(app.em(), { [policy]: 3 }, 'victim');
    await seedSurroundings();
    const refusing = victim.kids[policy][1]!;
    await seeder.mark(app.em(), policy, refusing, column);
    const before = await readTables(app.em(), entities);
    const outbox = await outboxFootprint(app);

    const error = await trigger.run(app, Parent, victim.key).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DeletionBlockedError);
    const blocked = error as DeletionBlockedError;
    expect(blocked.getStatus()).toBe(409);
    expect(blocked).toMatchObject({ code: 'DELETION_BLOCKED', entity: parentName });
    expect(String(blocked.id)).toBe(textKey(victim.key));
    expect({ total: blocked.total, blockers: blockersAsText(blocked.blockers) }).toEqual({
      total: 1,
      blockers: [{ entity: kidName(policy), id: textKey(refusing), path: pathOf(policy), reason: reason(kidName(policy)) }],
    });
    // The error is the HTTP body: it must serialize, whatever the key type.
    expect(() => JSON.stringify(blocked.getResponse())).not.toThrow();
    expect(await readTables(app.em(), entities)).toEqual(before);
    expect(await outboxFootprint(app)).toEqual(outbox);
  });

  it.each(POLICY_NAMES)('plan() with %s children: rows per path and allowed, then the blocker’s key; writes nothing', async (policy) => {
    const victim = await seeder.parent(app.em(), { [policy]: 3 }, 'victim');
    await seedSurroundings();
    const before = await readTables(app.em(), entities);
    const outbox = await outboxFootprint(app);
    const byPath = (paths: readonly Partial<PlannedPath>[]) => [...paths].sort((a, b) => a.path!.localeCompare(b.path!));

    const plan = await app.deletions.plan(Parent, victim.key);

    expect(plan.allowed).toBe(policy !== 'restrict');
    expect(byPath(plan.paths.map(({ path, entity, policy, timing, rows, effect }) => ({ path, entity, policy, timing, rows, effect })))).toEqual(
      byPath([
        { path: parentName, entity: parentName, policy: 'root', timing: 'now', rows: 1, effect: 'delete' },
        ...POLICY_NAMES.map((p) => ({
          path: pathOf(p),
          entity: kidName(p),
          policy: p,
          // nullifyThenPurge detaches in the request and deletes later (the plan's `later`).
          timing: isAsync(p) && p !== 'nullifyThenPurge' ? ('later' as const) : ('now' as const),
          rows: p === policy ? 3 : 0,
          effect: p === 'restrict' ? ('refuse' as const) : p === 'nullify' || p === 'nullifyThenPurge' ? ('detach' as const) : ('delete' as const),
        })),
      ]),
    );

    if ((DELETING as PolicyName[]).includes(policy)) {
      const refusing = victim.kids[policy][2]!;
      await seeder.mark(app.em(), policy, refusing, 'blocked');
      const refused = await app.deletions.plan(Parent, victim.key);
      expect({ allowed: refused.allowed, blockedTotal: refused.blockedTotal, blockers: blockersAsText(refused.blockers) }).toEqual({
        allowed: false,
        blockedTotal: 1,
        blockers: [{ entity: kidName(policy), id: textKey(refusing), path: pathOf(policy), reason: BLOCKED_REASON(kidName(policy)) }],
      });
      expect(() => JSON.stringify(refused)).not.toThrow();
    }
    expect(await readTables(app.em(), entities)).toEqual(before);
    expect(await outboxFootprint(app)).toEqual(outbox);
  });

  it('the relay enqueues a request whose job went missing, and the cascade completes', async () => {
    const victim = await seeder.parent(app.em(), { destroyAsync: 3, deleteAllAsync: 3, nullifyThenPurge: 3 }, 'victim');
    await seedSurroundings();
    const before = await readTables(app.em(), entities);

    const requestId = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Parent, victim.key);
      const id = receipt.requestId!;
      // As if Redis lost the job after the commit: the request row is all that is left.
      await waitUntil(async () => (await app.queue.getJob(id)) !== undefined, 5_000, 'the job enqueued after commit');
      await (await app.queue.getJob(id))!.remove();
      expect(await app.queue.getJob(id)).toBeUndefined();
      expect(await app.module.get(OutboxRelay).run()).toEqual([id]);
      return id;
    });

    const status = await waitForState(app.deletions, requestId);
    expect(status).toMatchObject({ state: 'completed', entity: parentName, counts: { processed: 9, failed: 0 } });
    expectJsonIds(status.ids, kind, victim.key);
    let after = tablesAfter(entities, before, victim.key, 'destroyAsync', 'delete');
    after = tablesAfter(entities, after, victim.key, 'deleteAllAsync', 'delete');
    after = tablesAfter(entities, after, victim.key, 'nullifyThenPurge', 'delete');
    expect(await readTables(app.em(), entities)).toEqual(after);
  });

  it('the sweeper files a request for children whose parent was deleted behind the module’s back, and it deletes them', async () => {
    const gone = await seeder.parent(app.em(), { destroyAsync: 3, deleteAllAsync: 2 }, 'gone');
    await seedSurroundings();
    const before = await readTables(app.em(), entities);
    // nativeDelete bypasses the policies (DESIGN 3); no FK constraint stops it (DESIGN 2.2).
    await app.em().nativeDelete(Parent, { id: gone.key });
    const sweeper = app.module.get(OrphanSweeper);

    const report = await sweeper.sweep();

    expect(report.relations).toEqual(
      expect.arrayContaining([
        { relation: pathOf('destroyAsync'), missingParents: 1, requestId: expect.any(String) },
        { relation: pathOf('deleteAllAsync'), missingParents: 1, requestId: expect.any(String) },
      ]),
    );
    const filed = report.relations.filter((r) => r.missingParents > 0);
    expect(filed).toHaveLength(2);
    for (const { requestId } of filed) {
      const status = await waitForState(app.deletions, requestId!);
      expect(status).toMatchObject({ state: 'completed', origin: 'sweeper', entity: parentName });
      expectJsonIds(status.ids, kind, gone.key);
    }
    let after = tablesAfter(entities, before, gone.key, 'destroyAsync', 'delete');
    after = tablesAfter(entities, after, gone.key, 'deleteAllAsync', 'delete');
    expect(await readTables(app.em(), entities)).toEqual(after);
    // Nothing left to find.
    expect((await sweeper.sweep()).relations.every((r) => r.missingParents === 0)).toBe(true);
  });

  it('the sweeper files nothing for a parent whose pending request already walks its children', async () => {
    const victim = await seeder.parent(app.em(), { destroyAsync: 3, deleteAllAsync: 2 }, 'victim');
    await seedSurroundings();
    const before = await readTables(app.em(), entities);

    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Parent, victim.key);
      expect((await app.deletions.status(receipt.requestId!)).state).toBe('pending');
      const report = await app.module.get(OrphanSweeper).sweep();
      expect(report.relations.map((r) => r.missingParents)).toEqual(report.relations.map(() => 0));
      expect(await rootRequestIds(app.em())).toEqual([receipt.requestId]);
      return receipt;
    });

    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    let after = tablesAfter(entities, before, victim.key, 'destroyAsync', 'delete');
    after = tablesAfter(entities, after, victim.key, 'deleteAllAsync', 'delete');
    expect(await readTables(app.em(), entities)).toEqual(after);
  });
});
