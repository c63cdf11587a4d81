import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, ForeignKeyConstraintViolationException, type EntityClass, type EventArgs, type EventSubscriber } from '@mikro-orm/core';
import pg from 'pg';
import { DeletionBlockedError, DeletionTargetNotFoundError, ValidateBeforeDestroy, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { PgAdmin } from '../support/pg-admin.js';
import { databaseUrl } from '../support/services.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Attacks on the fast paths: the lean `destroy()` (no flush), the set-based `destroy` of an
 * unobserved child, the in-memory root instance validators of the guard, and the checked
 * `deleteAllAsync` batch. Each test states what the old flush path did.
 */
const DATABASE = 'deletion_attack_fast_paths';

type Row = Record<string, unknown>;
const named = (name: string) => ({ [name]: class {} })[name] as unknown as EntityClass<Row>;
const intId = { type: 'integer', primary: true, autoincrement: false } as const;
const fk = (entity: () => EntityClass<Row>) => ({ kind: 'm:1', entity, nullable: true, createForeignKeyConstraint: false, index: true }) as const;

// ---- A1: a lean root whose subscriber names it by its EntitySchema (as `defineEntity()` returns one)
const SchOwner = named('FpSchOwner');
const SchPet = named('FpSchPet');
const SchOwnerSchema = new EntitySchema<Row>({
  class: SchOwner as never,
  tableName: 'fp_sch_owner',
  properties: { id: intId, pets: { kind: '1:m', entity: () => SchPet, mappedBy: 'owner' } } as never,
});
const SchPetSchema = new EntitySchema<Row>({ class: SchPet as never, tableName: 'fp_sch_pet', properties: { id: intId, owner: fk(() => SchOwner) } as never });

// ---- A2: an unobserved-looking destroy child whose subscriber names it by its EntitySchema
const SchBox = named('FpSchBox');
const SchItem = named('FpSchItem');
const SchBoxSchema = new EntitySchema<Row>({
  class: SchBox as never,
  tableName: 'fp_sch_box',
  properties: { id: intId, items: { kind: '1:m', entity: () => SchItem, mappedBy: 'box' } } as never,
});
const SchItemSchema = new EntitySchema<Row>({ class: SchItem as never, tableName: 'fp_sch_item', properties: { id: intId, box: fk(() => SchBox) } as never });

/** Delete events seen by the application subscriber that names its entities by schema. */
const schemaEvents: string[] = [];
const schemaSubscriber: EventSubscriber<Row> = {
  getSubscribedEntities: () => [SchOwnerSchema, SchItemSchema],
  beforeDelete: (args: EventArgs<Row>) => {
    schemaEvents.push(`before ${args.meta.className} ${String(args.entity.id)}`);
  },
  afterDelete: (args: EventArgs<Row>) => {
    schemaEvents.push(`after ${args.meta.className} ${String(args.entity.id)}`);
  },
};

// ---- A3: a destroy child with an onLoad hook (the old path loaded each child)
const LoadBox = named('FpLoadBox');
const LoadItem = named('FpLoadItem');
let loaded = 0;
const LoadBoxSchema = new EntitySchema<Row>({
  class: LoadBox as never,
  tableName: 'fp_load_box',
  properties: { id: intId, items: { kind: '1:m', entity: () => LoadItem, mappedBy: 'box' } } as never,
});
const LoadItemSchema = new EntitySchema<Row>({ class: LoadItem as never, tableName: 'fp_load_item', properties: { id: intId, box: fk(() => LoadBox) } as never });
LoadItemSchema.addHook('onLoad', () => {
  loaded++;
});

// ---- A4: a root with an instance validator and a request-writing policy (the guard path)
let rootChecks = 0;
class FpVaultRoot {
  id!: number;
  locked?: boolean;
  notLocked(): string | undefined {
    rootChecks++;
    return this.locked ? 'vault is locked' : undefined;
  }
}
ValidateBeforeDestroy()(FpVaultRoot.prototype, 'notLocked', Object.getOwnPropertyDescriptor(FpVaultRoot.prototype, 'notLocked')!);
const VaultRoot = FpVaultRoot as unknown as EntityClass<Row>;
class FpVaultDoc {
  id!: number;
}
ValidateBeforeDestroy<Row>({ where: { held: true }, message: 'doc is held' })(FpVaultDoc);
const VaultRootSchema = new EntitySchema<Row>({
  class: VaultRoot as never,
  tableName: 'fp_vault_root',
  properties: { id: intId, locked: { type: 'boolean', default: false }, docs: { kind: '1:m', entity: () => FpVaultDoc, mappedBy: 'vault' } } as never,
});
const VaultDocSchema = new EntitySchema<Row>({
  class: FpVaultDoc as never,
  tableName: 'fp_vault_doc',
  properties: { id: intId, vault: fk(() => VaultRoot), held: { type: 'boolean', default: false } } as never,
});

// ---- A5: deleteAllAsync with a row-only set-based validator, flagged while the batch waits for its lock
const BatchParent = named('FpBatchParent');
class FpBatchKid {
  id!: number;
}
ValidateBeforeDestroy<Row>({ where: { blocked: true }, message: 'kid is blocked' })(FpBatchKid);
ValidateBeforeDestroy<Row>({ where: { $not: { status: 'ok' } }, message: 'kid is not ok' })(FpBatchKid);
const BatchParentSchema = new EntitySchema<Row>({
  class: BatchParent as never,
  tableName: 'fp_batch_parent',
  properties: { id: intId, kids: { kind: '1:m', entity: () => FpBatchKid, mappedBy: 'parent' } } as never,
});
const BatchKidSchema = new EntitySchema<Row>({
  class: FpBatchKid as never,
  tableName: 'fp_batch_kid',
  properties: {
    id: intId,
    parent: fk(() => BatchParent),
    blocked: { type: 'boolean', default: false },
    status: { type: 'string', nullable: true },
  } as never,
});

// ---- A7: a lean root hidden by a default-enabled application filter
const FilteredRoot = named('FpFilteredRoot');
const FilteredRootSchema = new EntitySchema<Row>({
  class: FilteredRoot as never,
  tableName: 'fp_filtered_root',
  properties: { id: intId, hidden: { type: 'boolean', default: false }, notes: { kind: '1:m', entity: () => FilteredNote, mappedBy: 'root' } } as never,
  filters: { visible: { name: 'visible', cond: { hidden: false }, default: true } },
});
const FilteredNote = named('FpFilteredNote');
const FilteredNoteSchema = new EntitySchema<Row>({ class: FilteredNote as never, tableName: 'fp_filtered_note', properties: { id: intId, root: fk(() => FilteredRoot) } as never });

// ---- A8: a lean root whose subscriber is registered after boot
const LateRoot = named('FpLateRoot');
const LateRootSchema = new EntitySchema<Row>({
  class: LateRoot as never,
  tableName: 'fp_late_root',
  properties: { id: intId, notes: { kind: '1:m', entity: () => LateNote, mappedBy: 'root' } } as never,
});
const LateNote = named('FpLateNote');
const LateNoteSchema = new EntitySchema<Row>({ class: LateNote as never, tableName: 'fp_late_note', properties: { id: intId, root: fk(() => LateRoot) } as never });

// ---- A9: a set-based destroy child referenced by a NO ACTION foreign key from a grandchild
const FkParent = named('FpFkParent');
const FkKid = named('FpFkKid');
const FkGrand = named('FpFkGrand');
const FkParentSchema = new EntitySchema<Row>({
  class: FkParent as never,
  tableName: 'fp_fk_parent',
  properties: { id: intId, kids: { kind: '1:m', entity: () => FkKid, mappedBy: 'parent' } } as never,
});
const FkKidSchema = new EntitySchema<Row>({ class: FkKid as never, tableName: 'fp_fk_kid', properties: { id: intId, parent: fk(() => FkParent) } as never });
const FkGrandSchema = new EntitySchema<Row>({
  class: FkGrand as never,
  tableName: 'fp_fk_grand',
  properties: { id: intId, kid: { kind: 'm:1', entity: () => FkKid, nullable: true, deleteRule: 'no action' } } as never,
});

// ---- A10: lean destroy() racing a remove + flush of the same row
const RaceRoot = named('FpRaceRoot');
const RaceRootSchema = new EntitySchema<Row>({
  class: RaceRoot as never,
  tableName: 'fp_race_root',
  properties: { id: intId, notes: { kind: '1:m', entity: () => RaceNote, mappedBy: 'root' } } as never,
});
const RaceNote = named('FpRaceNote');
const RaceNoteSchema = new EntitySchema<Row>({ class: RaceNote as never, tableName: 'fp_race_note', properties: { id: intId, root: fk(() => RaceRoot) } as never });

// ---- B1/B2: a lean root with a synchronous and a queued policy (its progress goes with its DELETE), and a NO ACTION reference to it
const ProgRoot = named('FpProgRoot');
const ProgNote = named('FpProgNote');
const ProgPet = named('FpProgPet');
const ProgRef = named('FpProgRef');
const ProgRootSchema = new EntitySchema<Row>({
  class: ProgRoot as never,
  tableName: 'fp_prog_root',
  properties: {
    id: intId,
    notes: { kind: '1:m', entity: () => ProgNote, mappedBy: 'root' },
    pets: { kind: '1:m', entity: () => ProgPet, mappedBy: 'root' },
  } as never,
});
const ProgNoteSchema = new EntitySchema<Row>({ class: ProgNote as never, tableName: 'fp_prog_note', properties: { id: intId, root: fk(() => ProgRoot) } as never });
const ProgPetSchema = new EntitySchema<Row>({ class: ProgPet as never, tableName: 'fp_prog_pet', properties: { id: intId, root: fk(() => ProgRoot) } as never });
const ProgRefSchema = new EntitySchema<Row>({
  class: ProgRef as never,
  tableName: 'fp_prog_ref',
  properties: { id: intId, root: { kind: 'm:1', entity: () => ProgRoot, nullable: true, deleteRule: 'no action' } } as never,
});

let app: DeletionTestApp;
let admin: PgAdmin;
let other: pg.Client;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Row[]>(q, p);
const ids = async (table: string) => (await sql(`select id from ${table} order by id`)).map((r: Row) => r.id as number);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      SchOwnerSchema,
      SchPetSchema,
      SchBoxSchema,
      SchItemSchema,
      LoadBoxSchema,
      LoadItemSchema,
      VaultRootSchema,
      VaultDocSchema,
      BatchParentSchema,
      BatchKidSchema,
      FilteredRootSchema,
      FilteredNoteSchema,
      LateRootSchema,
      LateNoteSchema,
      FkParentSchema,
      FkKidSchema,
      FkGrandSchema,
      RaceRootSchema,
      RaceNoteSchema,
      ProgRootSchema,
      ProgNoteSchema,
      ProgPetSchema,
      ProgRefSchema,
    ],
    orm: { subscribers: [schemaSubscriber] },
    deletion: {
      doctor: 'warn',
      policies: [
        definePolicy(SchOwner, { pets: 'deleteAll' } as never),
        definePolicy(SchBox, { items: 'destroy' } as never),
        definePolicy(LoadBox, { items: 'destroy' } as never),
        definePolicy(VaultRoot, { docs: 'destroyAsync' } as never),
        definePolicy(BatchParent, { kids: 'deleteAllAsync' } as never),
        definePolicy(FilteredRoot, { notes: 'deleteAll' } as never),
        definePolicy(LateRoot, { notes: 'deleteAll' } as never),
        definePolicy(FkParent, { kids: 'destroy' } as never),
        definePolicy(RaceRoot, { notes: 'deleteAllAsync' } as never),
        definePolicy(ProgRoot, { notes: 'deleteAll', pets: 'destroyAsync' } as never),
      ],
    },
  });
  admin = await PgAdmin.connect(DATABASE);
  other = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  other.on('error', () => undefined);
  await other.connect();
});

afterAll(async () => {
  await other?.end();
  await admin?.close();
  await app?.close();
});

beforeEach(() => {
  schemaEvents.length = 0;
  loaded = 0;
  rootChecks = 0;
});

describe('A1/A2: an application subscriber that names its entities by EntitySchema', () => {
  it('MikroORM dispatches to it: a remove + flush of the root runs its delete events once', async () => {
    await sql(`insert into fp_sch_owner (id) values (1)`);
    const em = app.em();
    em.remove(await em.findOneOrFail(SchOwner, { id: 1 }));
    await em.flush();
    expect(schemaEvents).toEqual(['before FpSchOwner 1', 'after FpSchOwner 1']);
  });

  it('destroy() of the root runs them once too, as the flush did (lean path must see the subscriber)', async () => {
    await sql(`insert into fp_sch_owner (id) values (2)`);
    await sql(`insert into fp_sch_pet (id, owner_id) values (20, 2)`);
    await app.deletions.destroy(SchOwner, 2 as never);
    expect(await ids('fp_sch_owner')).not.toContain(2);
    expect(schemaEvents).toEqual(['before FpSchOwner 2', 'after FpSchOwner 2']);
  });

  it('a destroy relation runs them once per child (set-based destroy must see the subscriber)', async () => {
    await sql(`insert into fp_sch_box (id) values (1)`);
    await sql(`insert into fp_sch_item (id, box_id) values (11, 1), (12, 1)`);
    await app.deletions.destroy(SchBox, 1 as never);
    expect(await ids('fp_sch_item')).toEqual([]);
    expect(schemaEvents.sort()).toEqual(['after FpSchItem 11', 'after FpSchItem 12', 'before FpSchItem 11', 'before FpSchItem 12']);
  });
});

describe('A3: a destroy child with an onLoad hook', () => {
  it('runs the hook once per child, as the old path did when it loaded each page', async () => {
    await sql(`insert into fp_load_box (id) values (1)`);
    await sql(`insert into fp_load_item (id, box_id) values (1, 1), (2, 1), (3, 1)`);
    await app.deletions.destroy(LoadBox, 1 as never);
    expect(await ids('fp_load_item')).toEqual([]);
    expect(loaded).toBe(3);
  });
});

describe('A4: a root instance validator under the guarded request insert', () => {
  beforeEach(async () => {
    await sql(`truncate fp_vault_root, fp_vault_doc`);
  });

  it('refused by the root instance validator: DeletionBlockedError, nothing written, the validator ran once', async () => {
    await sql(`insert into fp_vault_root (id, locked) values (1, true)`);
    await sql(`insert into fp_vault_doc (id, vault_id) values (1, 1)`);
    await expect(app.deletions.destroy(VaultRoot, 1 as never)).rejects.toBeInstanceOf(DeletionBlockedError);
    expect(await ids('fp_vault_root')).toEqual([1]);
    expect(await sql(`select id from deletion_request where entity = 'FpVaultRoot'`)).toEqual([]);
    expect(rootChecks).toBe(1);
  });

  it('refused by a child set-based validator: the root instance validator still ran once', async () => {
    await sql(`insert into fp_vault_root (id) values (2)`);
    await sql(`insert into fp_vault_doc (id, vault_id, held) values (2, 2, true)`);
    const error = await app.deletions.destroy(VaultRoot, 2 as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeletionBlockedError);
    expect((error as DeletionBlockedError).message).toMatch(/held/);
    expect(await ids('fp_vault_root')).toEqual([2]);
    expect(rootChecks).toBe(1);
  });

  it('passing: the validator ran once and the request is pending', async () => {
    await sql(`insert into fp_vault_root (id) values (3)`);
    await sql(`insert into fp_vault_doc (id, vault_id) values (3, 3)`);
    const receipt = await whilePaused(app, () => app.deletions.destroy(VaultRoot, 3 as never));
    expect(receipt.status).toBe('pending');
    expect(rootChecks).toBe(1);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await ids('fp_vault_doc')).toEqual([]);
  });
});

describe('A5/A6: deleteAllAsync with row-only validators, checked in the locking statement', () => {
  beforeEach(async () => {
    await sql(`truncate fp_batch_parent, fp_batch_kid`);
    await sql(`insert into fp_batch_parent (id) values (1)`);
    await sql(`insert into fp_batch_kid (id, parent_id, status) values (1, 1, 'ok'), (2, 1, 'ok'), (3, 1, 'ok'), (4, 1, 'ok')`);
  });

  it('a row flagged by a transaction whose lock the batch waits for blocks the batch: nothing deleted, failed', async () => {
    const requestId = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(BatchParent, 1 as never);
      await other.query('begin');
      await other.query(`update fp_batch_kid set blocked = true where id = 3`);
      return receipt.requestId!;
    });
    try {
      await waitUntil(async () => (await admin.lockWaiters()).length > 0, 10_000, 'the batch waiting for the row lock');
    } finally {
      await other.query('commit');
    }
    const status = await waitForState(app.deletions, requestId);
    expect(status.state).toBe('failed');
    expect(JSON.stringify(status.errors)).toMatch(/blocked/);
    expect(await ids('fp_batch_kid')).toEqual([1, 2, 3, 4]);
  });

  it('a row unflagged while the batch waits is deleted with the others', async () => {
    await sql(`update fp_batch_kid set blocked = true where id = 2`);
    const requestId = await whilePaused(app, async () => {
      await sql(`update fp_batch_kid set blocked = false where id = 2`);
      const receipt = await app.deletions.destroy(BatchParent, 1 as never);
      await other.query('begin');
      await other.query(`update fp_batch_kid set blocked = true where id = 2`);
      return receipt.requestId!;
    });
    await waitUntil(async () => (await admin.lockWaiters()).length > 0, 10_000, 'the batch waiting for the row lock');
    await other.query('rollback');
    const status = await waitForState(app.deletions, requestId);
    expect(status.state).toBe('completed');
    expect(await ids('fp_batch_kid')).toEqual([]);
  });

  it('a NULL status ($not: { status: "ok" }) does not block, as in the old validator statement', async () => {
    await sql(`update fp_batch_kid set status = null where id = 4`);
    const requestId = (await app.deletions.destroy(BatchParent, 1 as never)).requestId!;
    const status = await waitForState(app.deletions, requestId);
    expect(status.state).toBe('completed');
    expect(await ids('fp_batch_kid')).toEqual([]);
  });

  it('a row whose status changes to another value while the batch waits blocks it', async () => {
    const requestId = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(BatchParent, 1 as never);
      await other.query('begin');
      await other.query(`update fp_batch_kid set status = 'frozen' where id = 1`);
      return receipt.requestId!;
    });
    try {
      await waitUntil(async () => (await admin.lockWaiters()).length > 0, 10_000, 'the batch waiting for the row lock');
    } finally {
      await other.query('commit');
    }
    const status = await waitForState(app.deletions, requestId);
    expect(status.state).toBe('failed');
    expect(await ids('fp_batch_kid')).toEqual([1, 2, 3, 4]);
  });
});

describe('A7: a lean root hidden by a default application filter', () => {
  it('is not found, and nothing is deleted', async () => {
    await sql(`insert into fp_filtered_root (id, hidden) values (1, true)`);
    await sql(`insert into fp_filtered_note (id, root_id) values (1, 1)`);
    await expect(app.deletions.destroy(FilteredRoot, 1 as never)).rejects.toBeInstanceOf(DeletionTargetNotFoundError);
    expect(await ids('fp_filtered_root')).toEqual([1]);
    expect(await ids('fp_filtered_note')).toEqual([1]);
  });
});

describe('A8: a subscriber registered after boot', () => {
  it('sees the lean root go, once', async () => {
    await sql(`insert into fp_late_root (id) values (1), (2)`);
    await app.deletions.destroy(LateRoot, 1 as never);
    const seen: unknown[] = [];
    app.orm.em.getEventManager().registerSubscriber({
      getSubscribedEntities: () => [LateRoot],
      beforeDelete: (args: EventArgs<Row>) => {
        seen.push(args.entity.id);
      },
    });
    await app.deletions.destroy(LateRoot, 2 as never);
    expect(seen).toEqual([2]);
    expect(await ids('fp_late_root')).toEqual([]);
  });
});

describe('A9: a set-based destroy child referenced by a NO ACTION foreign key', () => {
  it('fails with the foreign-key exception the flush raised, and deletes nothing', async () => {
    await sql(`insert into fp_fk_parent (id) values (1)`);
    await sql(`insert into fp_fk_kid (id, parent_id) values (1, 1), (2, 1)`);
    await sql(`insert into fp_fk_grand (id, kid_id) values (1, 2)`);
    await expect(app.deletions.destroy(FkParent, 1 as never)).rejects.toBeInstanceOf(ForeignKeyConstraintViolationException);
    expect(await ids('fp_fk_parent')).toEqual([1]);
    expect(await ids('fp_fk_kid')).toEqual([1, 2]);
  });
});

describe('A10: lean destroy() racing a remove + flush of the same row', () => {
  it('one wins, the other is not found, one request', async () => {
    await sql(`insert into fp_race_root (id) values (1)`);
    await sql(`insert into fp_race_note (id, root_id) values (1, 1)`);
    await other.query('begin');
    await other.query(`select * from fp_race_root where id = 1 for update`);
    const em = app.em();
    const row = await em.findOneOrFail(RaceRoot, { id: 1 });
    const settle = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (e instanceof DeletionTargetNotFoundError ? 'not found' : e),
      );
    const viaService = settle(whilePaused(app, () => app.deletions.destroy(RaceRoot, 1 as never)));
    em.remove(row);
    const viaFlush = settle(em.flush());
    await waitUntil(async () => (await admin.lockWaiters()).length >= 2, 10_000, 'both waiting');
    await other.query('commit');
    const outcomes = [await viaService, await viaFlush];
    expect(outcomes.sort()).toEqual(['not found', 'ok']);
    expect(await sql(`select id from deletion_request where entity = 'FpRaceRoot'`)).toHaveLength(1);
    expect(await ids('fp_race_root')).toEqual([]);
  });
});

describe('B1/B2: a lean root with a synchronous and a queued policy', () => {
  beforeEach(async () => {
    await sql(`truncate fp_prog_root, fp_prog_note, fp_prog_pet, fp_prog_ref`);
  });

  it('records the synchronous path and its count on the request, and completes', async () => {
    await sql(`insert into fp_prog_root (id) values (1)`);
    await sql(`insert into fp_prog_note (id, root_id) values (1, 1), (2, 1), (3, 1)`);
    await sql(`insert into fp_prog_pet (id, root_id) values (1, 1)`);
    const receipt = await app.deletions.destroy(ProgRoot, 1 as never);
    expect(receipt.status).toBe('pending');
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(status.progress.map((p) => `${p.path}:${p.policy}:${p.processed}:${String(p.done)}`).sort()).toEqual([
      'FpProgRoot.notes:deleteAll:3:true',
      'FpProgRoot.pets:destroyAsync:1:true',
    ]);
    expect([await ids('fp_prog_root'), await ids('fp_prog_note'), await ids('fp_prog_pet')]).toEqual([[], [], []]);
  });

  it('a NO ACTION reference to the root: the foreign-key exception, nothing deleted, no request left', async () => {
    await sql(`insert into fp_prog_root (id) values (2)`);
    await sql(`insert into fp_prog_note (id, root_id) values (4, 2)`);
    await sql(`insert into fp_prog_pet (id, root_id) values (2, 2)`);
    await sql(`insert into fp_prog_ref (id, root_id) values (1, 2)`);
    await expect(app.deletions.destroy(ProgRoot, 2 as never)).rejects.toBeInstanceOf(ForeignKeyConstraintViolationException);
    expect([await ids('fp_prog_root'), await ids('fp_prog_note'), await ids('fp_prog_pet')]).toEqual([[2], [4], [2]]);
    expect(await sql(`select id from deletion_request where entity = 'FpProgRoot' and parent_ids @> '[2]'::jsonb`)).toEqual([]);
  });

  it('a burst of concurrent deletions (coalesced enqueue): every request gets its job and completes', async () => {
    const n = 12;
    for (let i = 10; i < 10 + n; i++) {
      await sql(`insert into fp_prog_root (id) values (?)`, [i]);
      await sql(`insert into fp_prog_pet (id, root_id) values (?, ?)`, [i, i]);
    }
    const receipts = await Promise.all(Array.from({ length: n }, (_, i) => app.deletions.destroy(ProgRoot, (10 + i) as never)));
    const states = await Promise.all(receipts.map(async (r) => (await waitForState(app.deletions, r.requestId!, ['completed', 'failed'], 20_000)).state));
    expect(states).toEqual(Array.from({ length: n }, () => 'completed'));
    expect(await ids('fp_prog_pet')).toEqual([]);
  });
});

describe('B3: remove + flush of an uninitialized reference to a root with an instance validator', () => {
  it('is refused by the validator (the row is locked)', async () => {
    await sql(`truncate fp_vault_root, fp_vault_doc`);
    await sql(`insert into fp_vault_root (id, locked) values (5, true)`);
    const em = app.em();
    em.remove(em.getReference(VaultRoot, 5 as never));
    await expect(em.flush()).rejects.toBeInstanceOf(DeletionBlockedError);
    expect(await ids('fp_vault_root')).toEqual([5]);
  });
});
