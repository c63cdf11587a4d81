import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import {
  DOCTOR_CODES,
  DeletionBlockedError,
  DeletionOrphan,
  DeletionRequest,
  DeletionRestrictedError,
  OrphanSweeper,
  definePolicy,
  type DoctorFinding,
} from '../../lib/index.js';
import { createSchemaShapeApp } from '../fixtures/shapes/schemas.app.js';
import { FLAGGED_REASON, ORDER_RELATIONS, SCHEMA_VARIANTS, schemaShape, type ChildKey, type SchemaVariant } from '../fixtures/shapes/schemas.entities.js';
import {
  createDecoys,
  flagChildren,
  misdirected,
  mirrorDecoys,
  seedChildren,
  seedDecoyChildren,
  seedOrder,
  seedVault,
  snapshot,
  withChildren,
  withoutRow,
  type Tables,
} from '../fixtures/shapes/schemas.seed.js';
import type { DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Schemas and identifiers (issue 11, DESIGN 7): with entities in their own schema, with
 * MikroORM's `schema` option, and with mixed-case and reserved-word names, every statement the
 * library writes goes to the table MikroORM's own queries use, and the doctor inspects those same
 * tables. Each variant keeps decoys where a statement resolved differently would land (the same
 * table name in `public`, or the case-folded name), holding copies of the real rows: the real
 * tables must change exactly as the policies say, the decoys not at all.
 */

/** A full set of children for an order that may be deleted (no `restrict`ed holds, no pins). */
const DELETABLE: Partial<Record<ChildKey, number>> = { line: 3, note: 2, tag: 2, item: 4, log: 5, memo: 2 };

describe.each(SCHEMA_VARIANTS.map((variant, i) => [variant, i] as [SchemaVariant, number]))('%s', (variant, index) => {
  const shape = schemaShape(variant);
  const { layout, Order, Vault } = shape;
  const database = `deletion_shapes_schemas_${index}`;
  const name = (relation: keyof typeof ORDER_RELATIONS) => `${Order.name}.${relation}`;

  /** Seeds a bystander and a target, copies them into the decoys, and adds decoy-only rows that would refuse the target. */
  async function seedTarget(app: DeletionTestApp, children: Partial<Record<ChildKey, number>>, bystander: Partial<Record<ChildKey, number>>): Promise<number> {
    await seedOrder(app.em(), layout, 'bystander', bystander);
    const id = await seedOrder(app.em(), layout, 'target', children);
    await mirrorDecoys(app.em(), layout);
    // Read from a decoy, these would refuse the deletion (restrict, validators).
    await seedDecoyChildren(app.em(), layout, 'hold', id, 1);
    for (const key of ['note', 'item', 'log'] as const) {
      await seedDecoyChildren(app.em(), layout, key, id, 1, true);
    }
    return id;
  }

  describe('every policy, and the module’s own tables', () => {
    let app: DeletionTestApp;

    beforeAll(async () => {
      app = await createSchemaShapeApp({
        database,
        shape,
        deletion: {
          batchSize: 2,
          doctor: 'warn',
          queue: { attempts: 1, backoffMs: 10 },
          policies: [
            definePolicy(Order, Object.fromEntries(Object.entries(ORDER_RELATIONS).map(([relation, { policy }]) => [relation, policy]))),
            definePolicy(Vault, { entries: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          ],
        },
      });
      await createDecoys(app.em(), layout);
    });
    afterEach(() => app && waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 30_000, 'no open request'));
    afterAll(() => app?.close());

    /** The real tables once order `id` is deleted: in the request's transaction, or once the queue is done too. */
    function afterOrder(before: Tables, id: number, phase: 'request' | 'done'): Tables {
      let out = withoutRow(layout, before, 'order', id);
      out = withChildren(layout, out, 'line', id, 'removed');
      out = withChildren(layout, out, 'note', id, 'removed');
      out = withChildren(layout, out, 'tag', id, 'detached');
      out = withChildren(layout, out, 'memo', id, phase === 'request' ? 'detached' : 'removed');
      if (phase === 'done') {
        for (const key of ['item', 'log', 'pin'] as const) {
          out = withChildren(layout, out, key, id, 'removed');
        }
      }
      return out;
    }

    const seedDeletable = (children = DELETABLE) => seedTarget(app, children, { ...DELETABLE, hold: 1, pin: 1 });

    it('destroy(): every policy, sync in the request and queued later, in the real tables only; status() follows it', async () => {
      const id = await seedDeletable();
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');

      const { result: status, statements } = await app.queries.record(async () => {
        const receipt = await whilePaused(app, async () => {
          const receipt = await app.deletions.destroy(Order, id);
          expect(receipt).toEqual({ entity: Order.name, id, status: 'pending', requestId: expect.any(String) });
          expect(['pending', 'running']).toContain((await app.deletions.status(receipt.requestId!)).state);
          expect(await snapshot(app.em(), layout, 'real')).toEqual(afterOrder(before, id, 'request'));
          expect(await app.em().count(DeletionOrphan, {})).toBe(DELETABLE.memo);
          return receipt;
        });
        return waitForState(app.deletions, receipt.requestId!);
      });

      expect(status).toMatchObject({ state: 'completed', entity: Order.name, ids: [id], errors: [] });
      expect(status.progress).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ path: name('items'), policy: 'destroyAsync', processed: DELETABLE.item, done: true }),
          expect.objectContaining({ path: name('logs'), policy: 'deleteAllAsync', processed: DELETABLE.log, done: true }),
          expect.objectContaining({ path: name('memos'), policy: 'nullifyThenPurge', processed: DELETABLE.memo, done: true }),
        ]),
      );
      expect(await snapshot(app.em(), layout, 'real')).toEqual(afterOrder(before, id, 'done'));
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(await app.em().count(DeletionOrphan, {})).toBe(0);
      // Every statement of the request and of the queue named the real tables as MikroORM does.
      expect(misdirected(layout, statements)).toEqual([]);
    });

    it('em.remove() + flush() ends in the same rows', async () => {
      const id = await seedDeletable();
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const em = app.em();
      em.remove(await em.findOneOrFail(Order, id));
      await em.flush();
      const [request] = await app.em().find(DeletionRequest, { parentId: null }, { orderBy: { createdAt: 'desc' }, limit: 1 });
      expect(request).toMatchObject({ entity: Order.name, parentIds: [id] });
      expect((await waitForState(app.deletions, request!.id)).state).toBe('completed');
      expect(await snapshot(app.em(), layout, 'real')).toEqual(afterOrder(before, id, 'done'));
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
    });

    it('restrict refuses while the real table holds a row (409), and nothing changes anywhere', async () => {
      const id = await seedDeletable({ ...DELETABLE, hold: 1 });
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const requests = await app.em().count(DeletionRequest, {});
      const error = await app.deletions.destroy(Order, id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeletionRestrictedError);
      expect(error).toMatchObject({ relation: 'holds', count: 1 });
      const plan = await app.deletions.plan(Order, id);
      expect(plan.allowed).toBe(false);
      expect(plan.paths.find((p) => p.path === name('holds'))).toMatchObject({ rows: 1, effect: 'refuse' });
      expect(await snapshot(app.em(), layout, 'real')).toEqual(before);
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(await app.em().count(DeletionRequest, {})).toBe(requests);
    });

    it.each([
      ['notes', 'note'],
      ['items', 'item'],
      ['logs', 'log'],
    ] as const)('a flagged row under %s refuses in the request (set-based validator); plan() reports it; nothing is written', async (relation, key) => {
      const id = await seedDeletable();
      const [flagged] = await flagChildren(app.em(), layout, key, id, true);
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const requests = await app.em().count(DeletionRequest, {});
      const blocker = { id: flagged, path: name(relation), reason: FLAGGED_REASON };

      const error = await app.deletions.destroy(Order, id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeletionBlockedError);
      expect(error).toMatchObject({ code: 'DELETION_BLOCKED', total: 1, blockers: [expect.objectContaining(blocker)] });
      const plan = await app.deletions.plan(Order, id);
      expect(plan).toMatchObject({ allowed: false, blockedTotal: 1, blockers: [expect.objectContaining(blocker)] });
      const em = app.em();
      em.remove(await em.findOneOrFail(Order, id));
      await expect(em.flush()).rejects.toBeInstanceOf(DeletionBlockedError);

      expect(await snapshot(app.em(), layout, 'real')).toEqual(before);
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(await app.em().count(DeletionRequest, {})).toBe(requests);
    });

    it('plan() counts the rows of the real tables, and decoy rows neither refuse nor count', async () => {
      const id = await seedDeletable();
      const plan = await app.deletions.plan(Order, id);
      expect(plan).toMatchObject({ allowed: true, blockers: [], blockedTotal: 0 });
      const rows = Object.fromEntries(plan.paths.map((p) => [p.path, { policy: p.policy, rows: p.rows }]));
      expect(rows).toEqual({
        [Order.name]: { policy: 'root', rows: 1 },
        [name('lines')]: { policy: 'destroy', rows: DELETABLE.line },
        [name('notes')]: { policy: 'deleteAll', rows: DELETABLE.note },
        [name('tags')]: { policy: 'nullify', rows: DELETABLE.tag },
        [name('holds')]: { policy: 'restrict', rows: 0 },
        [name('items')]: { policy: 'destroyAsync', rows: DELETABLE.item },
        [name('logs')]: { policy: 'deleteAllAsync', rows: DELETABLE.log },
        [name('memos')]: { policy: 'nullifyThenPurge', rows: DELETABLE.memo },
        [name('pins')]: { policy: 'destroyAsync', rows: 0 },
      });
    });

    it('the queue re-checks the validator in the real table: a row flagged after the request fails it; retry() completes once fixed', async () => {
      const id = await seedDeletable();
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const receipt = await whilePaused(app, async () => {
        const receipt = await app.deletions.destroy(Order, id);
        await flagChildren(app.em(), layout, 'item', id, true);
        return receipt;
      });
      const failed = await waitForState(app.deletions, receipt.requestId!);
      expect(failed.state).toBe('failed');
      expect(failed.errors).toEqual([
        expect.objectContaining({ error: expect.objectContaining({ code: 'DELETION_BLOCKED', blockers: [expect.objectContaining({ reason: FLAGGED_REASON })] }) }),
      ]);
      const stalled = await snapshot(app.em(), layout, 'real');
      expect(withChildren(layout, stalled, 'item', id, 'removed').item).not.toEqual(stalled.item);

      await flagChildren(app.em(), layout, 'item', id, false, DELETABLE.item);
      await app.deletions.retry(receipt.requestId!);
      expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
      const done = await snapshot(app.em(), layout, 'real');
      expect(done.item).toEqual(withChildren(layout, stalled, 'item', id, 'removed').item);
      expect(done.log).toEqual(withChildren(layout, stalled, 'log', id, 'removed').log);
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
    });

    it('tombstone mode marks the parent in its real table, then removes its children and the parent', async () => {
      await seedVault(app.em(), layout, 'kept', 2);
      const id = await seedVault(app.em(), layout, 'doomed', 5);
      await mirrorDecoys(app.em(), layout);
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const { id: idColumn, deletedAt } = layout.columns.vault;

      const { result: status, statements } = await app.queries.record(async () => {
        const receipt = await whilePaused(app, async () => {
          const receipt = await app.deletions.destroy(Vault, id);
          expect(receipt.status).toBe('pending');
          expect(await app.em().findOne(Vault, id)).toBeNull();
          const marked = await snapshot(app.em(), layout, 'real');
          expect(marked.vault!.find((row) => row[idColumn] === id)![deletedAt]).not.toBeNull();
          expect(marked.entry).toEqual(before.entry);
          expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
          return receipt;
        });
        return waitForState(app.deletions, receipt.requestId!);
      });
      expect(status.state).toBe('completed');
      expect(await snapshot(app.em(), layout, 'real')).toEqual(withChildren(layout, withoutRow(layout, before, 'vault', id), 'entry', id, 'removed'));
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(misdirected(layout, statements)).toEqual([]);
    });

    it('the sweeper finds the orphans of the real tables, files them through the policy, and ignores the decoys', async () => {
      await seedOrder(app.em(), layout, 'live', { item: 2, log: 2 });
      const gone = await seedOrder(app.em(), layout, 'gone', { item: 3, log: 2 });
      await mirrorDecoys(app.em(), layout);
      // Deleted behind the module's back: its children are orphans in the real tables, not in the decoys.
      await app.em().nativeDelete(Order, { id: gone });
      // And the decoys hold orphans of their own, which the real tables do not.
      await seedDecoyChildren(app.em(), layout, 'log', 987_654, 2);
      await seedChildren(app.em(), layout, 'item', gone, 1, 'late');
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');

      const { result: report, statements } = await app.queries.record(() => app.module.get(OrphanSweeper).sweep());
      expect([...report.relations].sort((a, b) => a.relation.localeCompare(b.relation))).toEqual([
        { relation: name('items'), missingParents: 1, requestId: expect.any(String) },
        { relation: name('logs'), missingParents: 1, requestId: expect.any(String) },
        { relation: name('pins'), missingParents: 0 },
      ]);
      for (const { requestId } of report.relations.filter((r) => r.requestId)) {
        expect(await waitForState(app.deletions, requestId!)).toMatchObject({ state: 'completed', origin: 'sweeper', ids: [gone] });
      }
      expect(await snapshot(app.em(), layout, 'real')).toEqual(withChildren(layout, withChildren(layout, before, 'item', gone, 'removed'), 'log', gone, 'removed'));
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(misdirected(layout, statements)).toEqual([]);
    });

    it('the doctor inspects the real tables: the unindexed key, the blocking constraint and the unserved validators there, nothing from the decoys', async () => {
      const findings = await app.deletions.doctor();
      const summary = (f: DoctorFinding) => ({ severity: f.severity, code: f.code, entity: f.entity, relation: f.relation });
      const entity = Order.name;
      expect(findings.map(summary).sort((a, b) => `${a.relation}/${a.code}`.localeCompare(`${b.relation}/${b.code}`))).toEqual([
        { severity: 'warning', code: DOCTOR_CODES.UNINDEXED_FK, entity, relation: 'lines' },
        { severity: 'warning', code: DOCTOR_CODES.UNSERVED_VALIDATOR, entity, relation: 'logs' },
        { severity: 'warning', code: DOCTOR_CODES.UNSERVED_VALIDATOR, entity, relation: 'items' },
        { severity: 'warning', code: DOCTOR_CODES.UNSERVED_VALIDATOR, entity, relation: 'notes' },
        { severity: 'error', code: DOCTOR_CODES.BLOCKING_FK, entity, relation: 'pins' },
      ].sort((a, b) => `${a.relation}/${a.code}`.localeCompare(`${b.relation}/${b.code}`)));
      // Each names the real table: schema-qualified off `public`, quoted where SQL needs it.
      const pins = findings.find((f) => f.relation === 'pins')!;
      const lines = findings.find((f) => f.relation === 'lines')!;
      if (layout.schema !== 'public') {
        expect(pins.message).toContain(`${layout.schema}.${layout.tables.pin}`);
        expect(lines.fix).toContain(`CREATE INDEX ON ${layout.schema}.${layout.tables.line} (${layout.columns.line.fk})`);
      } else {
        expect(pins.message).toContain(layout.tables.pin);
        expect(lines.fix).toContain(`CREATE INDEX ON "${layout.tables.line}" ("${layout.columns.line.fk}")`);
      }
    });
  });

  describe('sync policies alone', () => {
    const SYNC: Partial<Record<ChildKey, number>> = { line: 3, note: 2, tag: 2 };
    let app: DeletionTestApp;

    beforeAll(async () => {
      app = await createSchemaShapeApp({
        database,
        shape,
        deletion: { batchSize: 2, doctor: 'warn', policies: [definePolicy(Order, { lines: 'destroy', notes: 'deleteAll', tags: 'nullify', holds: 'restrict' })] },
      });
      await createDecoys(app.em(), layout);
    });
    afterAll(() => app?.close());

    const afterSync = (before: Tables, id: number): Tables =>
      withChildren(layout, withChildren(layout, withChildren(layout, withoutRow(layout, before, 'order', id), 'line', id, 'removed'), 'note', id, 'removed'), 'tag', id, 'detached');

    it.each(['destroy()', 'em.remove() + flush()'] as const)('%s: destroy, deleteAll and nullify change the real tables only, in the request', async (trigger) => {
      const id = await seedTarget(app, SYNC, { ...SYNC, hold: 1 });
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      const { statements } = await app.queries.record(async () => {
        if (trigger === 'destroy()') {
          expect(await app.deletions.destroy(Order, id)).toEqual({ entity: Order.name, id, status: 'completed' });
        } else {
          const em = app.em();
          em.remove(await em.findOneOrFail(Order, id));
          await em.flush();
        }
      });
      expect(await snapshot(app.em(), layout, 'real')).toEqual(afterSync(before, id));
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
      expect(await app.em().count(DeletionRequest, {})).toBe(0);
      // Every statement (the row lock included) named the real tables as MikroORM does.
      expect(misdirected(layout, statements)).toEqual([]);
    });

    it('restrict refuses on a row of the real table, and a flagged note (deleteAll) refuses; nothing changes', async () => {
      const held = await seedTarget(app, { ...SYNC, hold: 1 }, SYNC);
      const flagged = await seedTarget(app, SYNC, SYNC);
      const [note] = await flagChildren(app.em(), layout, 'note', flagged, true);
      const before = await snapshot(app.em(), layout, 'real');
      const decoys = await snapshot(app.em(), layout, 'decoy');
      await expect(app.deletions.destroy(Order, held)).rejects.toMatchObject({ code: 'DELETION_RESTRICTED', relation: 'holds', count: 1 });
      await expect(app.deletions.destroy(Order, flagged)).rejects.toMatchObject({
        code: 'DELETION_BLOCKED',
        total: 1,
        blockers: [expect.objectContaining({ id: note, path: name('notes'), reason: FLAGGED_REASON })],
      });
      expect(await snapshot(app.em(), layout, 'real')).toEqual(before);
      expect(await snapshot(app.em(), layout, 'decoy')).toEqual(decoys);
    });
  });
});
