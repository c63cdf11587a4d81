import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Collection, ChangeSetType, type EventArgs, type EventSubscriber, type FlushEventArgs, type Opt, type Rel } from '@mikro-orm/core';
import { AfterDelete, BeforeDelete, Entity, Index, ManyToOne, OnLoad, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionTargetNotFoundError, ValidateBeforeDestroy, definePolicy, type DeletionReceipt } from '../../lib/index.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { PgAdmin, RowLock } from '../support/pg-admin.js';
import { QueryLog } from '../support/query-log.js';
import { waitForState, waitUntil } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/*
 * DeletionService.destroy() without a flush (lib/cascade/lean-removal.ts): when nothing in the
 * application would observe the row's removal, the policies run and the row goes with the
 * module's own statement; otherwise (hooks, subscribers, onUpdate columns, a caller's entity
 * manager) the old flush path runs. Every fixture table starts with `lean_`.
 */

// ---- delete mode, nothing observes it (tests 1, 8, 9) ----

@Entity({ tableName: 'lean_parent' })
class LeanParent {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanParentChild, (child) => child.parent)
  children = new Collection<LeanParentChild>(this);

  @OneToMany(() => LeanParentNote, (note) => note.parent)
  notes = new Collection<LeanParentNote>(this);
}

@Entity({ tableName: 'lean_parent_child' })
class LeanParentChild {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanParent, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanParent>;
}

@Entity({ tableName: 'lean_parent_note' })
class LeanParentNote {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanParent, { nullable: true, index: true, deleteRule: 'no action' })
  parent?: Rel<LeanParent> | null;
}

// ---- tombstone mode with queued children (tests 2, 9) ----

@Entity({ tableName: 'lean_vault' })
class LeanVault {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  @OneToMany(() => LeanVaultKid, (kid) => kid.vault)
  kids = new Collection<LeanVaultKid>(this);
}

@Entity({ tableName: 'lean_vault_kid' })
class LeanVaultKid {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanVault, { index: true })
  vault!: Rel<LeanVault>;
}

// ---- the same shape as LeanParent, with entity hooks (test 3) ----

@Entity({ tableName: 'lean_hooked' })
class LeanHooked {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanHookedChild, (child) => child.parent)
  children = new Collection<LeanHookedChild>(this);

  @OneToMany(() => LeanHookedNote, (note) => note.parent)
  notes = new Collection<LeanHookedNote>(this);

  @BeforeDelete()
  journalBefore(): void {
    HookJournal.record('LeanHooked.beforeDelete', this.id);
  }

  @AfterDelete()
  journalAfter(): void {
    HookJournal.record('LeanHooked.afterDelete', this.id);
  }
}

@Entity({ tableName: 'lean_hooked_child' })
class LeanHookedChild {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanHooked, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanHooked>;
}

@Entity({ tableName: 'lean_hooked_note' })
class LeanHookedNote {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanHooked, { nullable: true, index: true, deleteRule: 'no action' })
  parent?: Rel<LeanHooked> | null;
}

// ---- tombstone mode with an onUpdate column (test 5) ----

@Entity({ tableName: 'lean_stamped' })
class LeanStamped {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  @Property({ type: 'datetime', onUpdate: () => new Date() })
  updatedAt: Opt<Date> = new Date();
}

// ---- validators (test 6) ----

@Entity({ tableName: 'lean_guarded' })
class LeanGuarded {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @Property({ default: false })
  frozen: Opt<boolean> = false;

  @Property({ type: 'datetime', nullable: true })
  deletedAt?: Date | null;

  @OneToMany(() => LeanGuardedPart, (part) => part.parent)
  parts = new Collection<LeanGuardedPart>(this);

  @ValidateBeforeDestroy()
  notFrozen(): string | undefined {
    return this.frozen ? 'frozen rows cannot be deleted' : undefined;
  }
}

@Entity({ tableName: 'lean_guarded_part' })
@ValidateBeforeDestroy<LeanGuardedPart>({ where: { blocked: true }, message: 'blocked parts are kept' })
@Index({ name: 'lean_guarded_part_blocked_idx', expression: 'create index lean_guarded_part_blocked_idx on lean_guarded_part (parent_id) where blocked' })
class LeanGuardedPart {
  @PrimaryKey()
  id!: number;

  @Property({ default: false })
  blocked: Opt<boolean> = false;

  @ManyToOne(() => LeanGuarded, { index: true })
  parent!: Rel<LeanGuarded>;
}

// ---- `destroy` relations: an unobserved child and a hooked one (test 7) ----

@Entity({ tableName: 'lean_tree' })
class LeanTree {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanChildPlain, (child) => child.parent)
  children = new Collection<LeanChildPlain>(this);
}

@Entity({ tableName: 'lean_child_plain' })
class LeanChildPlain {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanTree, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanTree>;
}

@Entity({ tableName: 'lean_grove' })
class LeanGrove {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanChildHooked, (child) => child.parent)
  children = new Collection<LeanChildHooked>(this);
}

@Entity({ tableName: 'lean_child_hooked' })
class LeanChildHooked {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanGrove, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanGrove>;

  @AfterDelete()
  journalAfter(): void {
    HookJournal.record('LeanChildHooked.afterDelete', this.id);
  }
}

// ---- application subscribers registered after boot (test 4, an app of its own) ----

@Entity({ tableName: 'lean_watched' })
class LeanWatched {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanWatchedKid, (kid) => kid.parent)
  kids = new Collection<LeanWatchedKid>(this);
}

@Entity({ tableName: 'lean_watched_kid' })
class LeanWatchedKid {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanWatched, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanWatched>;
}

@Entity({ tableName: 'lean_flushed' })
class LeanFlushed {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OneToMany(() => LeanFlushedKid, (kid) => kid.parent)
  kids = new Collection<LeanFlushedKid>(this);
}

@Entity({ tableName: 'lean_flushed_kid' })
class LeanFlushedKid {
  @PrimaryKey()
  id!: number;

  @ManyToOne(() => LeanFlushed, { index: true, deleteRule: 'no action' })
  parent!: Rel<LeanFlushed>;
}

// ---- an onLoad hook: the row is loaded as findOne() loads it (test 10) ----

@Entity({ tableName: 'lean_loaded' })
class LeanLoaded {
  @PrimaryKey()
  id!: number;

  @Property()
  name!: string;

  @OnLoad()
  loaded(): void {
    HookJournal.entries.push({ hook: 'LeanLoaded.onLoad', id: this.id });
  }
}

const MAIN_ENTITIES = [
  LeanLoaded,
  LeanParent,
  LeanParentChild,
  LeanParentNote,
  LeanVault,
  LeanVaultKid,
  LeanHooked,
  LeanHookedChild,
  LeanHookedNote,
  LeanStamped,
  LeanGuarded,
  LeanGuardedPart,
  LeanTree,
  LeanChildPlain,
  LeanGrove,
  LeanChildHooked,
];

type Sql = (query: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

const sqlOf =
  (app: () => DeletionTestApp): Sql =>
  (query, params = []) =>
    app().em().getConnection().execute<Record<string, unknown>[]>(query, params);

/** Inserts a parent row and `children` rows of each `[table, count]` pointing at it; returns the parent's id. */
async function seed(sql: Sql, parent: string, children: readonly (readonly [table: string, count: number])[] = [], name = 'doomed'): Promise<number> {
  const [row] = await sql(`insert into ${parent} (name) values (?) returning id`, [name]);
  const id = Number(row!.id);
  for (const [table, count] of children) {
    await sql(`insert into ${table} (parent_id) select ? from generate_series(1, ?)`, [id, count]);
  }
  return id;
}

const ids = async (sql: Sql, table: string, where: string, params: unknown[] = []): Promise<number[]> =>
  (await sql(`select id from ${table} where ${where} order by id`, params)).map((row) => Number(row.id));

const countOf = async (sql: Sql, table: string, where: string, params: unknown[] = []): Promise<number> =>
  Number((await sql(`select count(*)::int as n from ${table} where ${where}`, params))[0]!.n);

/** A timestamp column as read by a raw query (a string, or a Date), in milliseconds. */
const time = (value: unknown): number => new Date(value as string | Date).getTime();

const journal = (hook: string) =>
  HookJournal.entries
    .filter((entry) => entry.hook === hook)
    .map((entry) => Number(entry.id))
    .sort((a, b) => a - b);

/** Statements that name `table` (quoted), e.g. `"lean_parent"`. */
const on = (statements: readonly string[], table: string) => statements.filter((s) => s.includes(`"${table}"`));

describe('DeletionService.destroy() without a flush', () => {
  let booted: DeletionTestApp;
  const app = () => booted;
  const sql = sqlOf(app);

  beforeAll(async () => {
    booted = await createDeletionTestApp({
      database: 'deletion_lean_removal',
      entities: MAIN_ENTITIES,
      deletion: {
        policies: [
          definePolicy(LeanParent, { children: 'deleteAll', notes: 'nullify' }),
          definePolicy(LeanVault, { kids: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          definePolicy(LeanHooked, { children: 'deleteAll', notes: 'nullify' }),
          definePolicy(LeanStamped, {}, { tombstone: 'deletedAt' }),
          definePolicy(LeanGuarded, { parts: 'destroyAsync' }, { tombstone: 'deletedAt' }),
          definePolicy(LeanTree, { children: 'destroy' }),
          definePolicy(LeanGrove, { children: 'destroy' }),
          definePolicy(LeanLoaded, {}),
        ],
      },
    });
  });
  afterAll(() => booted?.close());
  beforeEach(() => HookJournal.clear());

  const seedParent = (name = 'doomed') => seed(sql, 'lean_parent', [['lean_parent_child', 3], ['lean_parent_note', 2]], name);

  /** The children, notes and parent row of a LeanParent. */
  async function parentState(id: number) {
    return {
      parent: await countOf(sql, 'lean_parent', 'id = ?', [id]),
      children: await countOf(sql, 'lean_parent_child', 'parent_id = ?', [id]),
      notes: await countOf(sql, 'lean_parent_note', 'parent_id = ?', [id]),
    };
  }

  it('keeps NO ACTION foreign keys on the fixture tables (so a policy that did not run would make the DELETE fail)', async () => {
    const rows = await sql(
      `select conrelid::regclass::text as child, confdeltype from pg_constraint
       where contype = 'f' and conrelid::regclass::text in ('lean_parent_child', 'lean_parent_note', 'lean_hooked_child', 'lean_hooked_note', 'lean_child_plain', 'lean_child_hooked', 'lean_vault_kid')
       order by 1`,
    );
    expect(rows).toEqual(
      ['lean_child_hooked', 'lean_child_plain', 'lean_hooked_child', 'lean_hooked_note', 'lean_parent_child', 'lean_parent_note', 'lean_vault_kid'].map((child) => ({ child, confdeltype: 'a' })),
    );
  });

  it('1. delete mode: applies deleteAll and nullify and deletes the parent with the module’s own statement, after one locked select', async () => {
    const id = await seedParent();
    const noteIds = await ids(sql, 'lean_parent_note', 'parent_id = ?', [id]);
    const bystander = await seedParent('bystander');

    const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanParent, id));

    expect(receipt).toEqual({ entity: 'LeanParent', id, status: 'completed' });
    expect(await parentState(id)).toEqual({ parent: 0, children: 0, notes: 0 });
    // The notes are still there, detached.
    expect(await sql(`select id, parent_id from lean_parent_note where id in (?, ?) order by id`, noteIds)).toEqual(noteIds.map((n) => ({ id: n, parent_id: null })));
    expect(await parentState(bystander)).toEqual({ parent: 1, children: 3, notes: 2 });

    // No child is loaded (deleteAll), and the parent is read once: the locked select of destroy().
    expect(QueryLog.matching(on(statements, 'lean_parent_child'), /^select/i)).toEqual([]);
    expect(QueryLog.matching(on(statements, 'lean_parent_child'), /for update/i)).toEqual([]);
    const parentReads = QueryLog.matching(on(statements, 'lean_parent'), /^select/i);
    expect(parentReads).toHaveLength(1);
    expect(parentReads[0]).toMatch(/for update$/i);
    // The parent's own DELETE is the module's, not the ORM's.
    expect(QueryLog.matching(on(statements, 'lean_parent'), /^delete/i)).toEqual([`delete from "lean_parent" as v where v."id" in (?)`]);
    expect(QueryLog.matching(on(statements, 'lean_parent_child'), /^delete/i)).toEqual([`delete from "lean_parent_child" as v where v."parent_id" in (?)`]);
    expect(QueryLog.matching(on(statements, 'lean_parent_note'), /^update/i)).toEqual([`update "lean_parent_note" as v set "parent_id" = null where v."parent_id" in (?)`]);
    // Nothing for a request: only synchronous policies ran.
    expect(QueryLog.matching(statements, /deletion_request/)).toEqual([]);
  });

  it('10. the row is read by key alone when nothing needs it as an entity, and loaded when an onLoad hook listens', async () => {
    // LeanParent: no instance validator, no filter of the application, no load listener.
    const id = await seedParent();
    const { statements } = await app().queries.record(() => app().deletions.destroy(LeanParent, id));
    expect(QueryLog.matching(on(statements, 'lean_parent'), /^select/i)).toEqual([`select v."id" as "k0" from "lean_parent" as v where v."id" in (?) order by v."id" for update`]);

    const [row] = await sql(`insert into lean_loaded (name) values ('x') returning id`);
    const loaded = Number(row!.id);
    const { result } = await app().queries.record(() => app().deletions.destroy(LeanLoaded, loaded));
    expect(result).toEqual({ entity: 'LeanLoaded', id: loaded, status: 'completed' });
    expect(journal('LeanLoaded.onLoad')).toEqual([loaded]);
    expect(await countOf(sql, 'lean_loaded', 'id = ?', [loaded])).toBe(0);
  });

  it('2. tombstone mode with a queued policy: marks the row with one statement of the module’s, then the queue removes the kids and the row', async () => {
    const id = await seed(sql, 'lean_vault', []);
    await sql(`insert into lean_vault_kid (vault_id) select ? from generate_series(1, 4)`, [id]);
    const kept = await seed(sql, 'lean_vault', [], 'kept');
    await sql(`insert into lean_vault_kid (vault_id) select ? from generate_series(1, 2)`, [kept]);

    const { receipt, statements } = await whilePaused(app(), async () => {
      const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanVault, id));
      expect(receipt).toEqual({ entity: 'LeanVault', id, status: 'pending', requestId: expect.any(String) });
      // Marked, hidden, and still there with its kids until the queue runs.
      expect(await sql(`select deleted_at is not null as marked from lean_vault where id = ?`, [id])).toEqual([{ marked: true }]);
      expect(await app().em().findOne(LeanVault, id)).toBeNull();
      expect(await countOf(sql, 'lean_vault_kid', 'vault_id = ?', [id])).toBe(4);
      expect(await app().deletions.status(receipt.requestId!)).toMatchObject({ state: 'pending' });
      return { receipt, statements };
    });

    const marks = QueryLog.matching(on(statements, 'lean_vault'), /^update/i);
    expect(marks).toHaveLength(1);
    expect(marks).toEqual([`update "lean_vault" as v set "deleted_at" = ? where v."id" in (?) and v."deleted_at" is null`]);
    expect(QueryLog.matching(on(statements, 'lean_vault'), /^select/i)).toHaveLength(1);
    expect(QueryLog.matching(on(statements, 'lean_vault_kid'), /^(select|delete|update)/i)).toEqual([]);

    const status = await waitForState(app().deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(await countOf(sql, 'lean_vault', 'id = ?', [id])).toBe(0);
    expect(await countOf(sql, 'lean_vault_kid', 'vault_id = ?', [id])).toBe(0);
    expect(await sql(`select deleted_at from lean_vault where id = ?`, [kept])).toEqual([{ deleted_at: null }]);
    expect(await countOf(sql, 'lean_vault_kid', 'vault_id = ?', [kept])).toBe(2);
    expect((await app().deletions.status(receipt.requestId!)).state).toBe('completed');
  });

  it('3. an entity with @BeforeDelete/@AfterDelete keeps the flush: each hook runs exactly once, policies applied', async () => {
    const id = await seed(sql, 'lean_hooked', [['lean_hooked_child', 3], ['lean_hooked_note', 2]]);
    const noteIds = await ids(sql, 'lean_hooked_note', 'parent_id = ?', [id]);
    const bystander = await seed(sql, 'lean_hooked', [['lean_hooked_child', 1], ['lean_hooked_note', 1]], 'bystander');

    const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanHooked, id));

    expect(receipt).toEqual({ entity: 'LeanHooked', id, status: 'completed' });
    expect(journal('LeanHooked.beforeDelete')).toEqual([id]);
    expect(journal('LeanHooked.afterDelete')).toEqual([id]);
    expect(HookJournal.entries).toHaveLength(2);
    expect(await countOf(sql, 'lean_hooked', 'id = ?', [id])).toBe(0);
    expect(await countOf(sql, 'lean_hooked_child', 'parent_id = ?', [id])).toBe(0);
    expect(await sql(`select id, parent_id from lean_hooked_note where id in (?, ?) order by id`, noteIds)).toEqual(noteIds.map((n) => ({ id: n, parent_id: null })));
    expect(await countOf(sql, 'lean_hooked', 'id = ?', [bystander])).toBe(1);
    expect(await countOf(sql, 'lean_hooked_child', 'parent_id = ?', [bystander])).toBe(1);
    expect(await countOf(sql, 'lean_hooked_note', 'parent_id = ?', [bystander])).toBe(1);
    // The flush's DELETE, not the module's.
    const deletes = QueryLog.matching(on(statements, 'lean_hooked'), /^delete/i);
    expect(deletes).toHaveLength(1);
    expect(deletes[0]).not.toContain(' as v ');
  });

  it('5. tombstone mode with an onUpdate property keeps the flush: the ORM’s UPDATE writes updatedAt with deletedAt', async () => {
    const old = new Date('2020-01-01T00:00:00Z');
    const [row] = await sql(`insert into lean_stamped (name, updated_at) values ('stamped', ?) returning id`, [old]);
    const id = Number(row!.id);
    const [other] = await sql(`insert into lean_stamped (name, updated_at) values ('kept', ?) returning id`, [old]);
    const kept = Number(other!.id);

    const receipt = await whilePaused(app(), async () => {
      const started = Date.now();
      const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanStamped, id));
      expect(receipt).toMatchObject({ entity: 'LeanStamped', id, status: 'pending', requestId: expect.any(String) });
      const [state] = await sql(`select deleted_at, updated_at from lean_stamped where id = ?`, [id]);
      expect(state!.deleted_at).not.toBeNull();
      expect(time(state!.updated_at)).toBeGreaterThan(old.getTime());
      expect(time(state!.updated_at)).toBeGreaterThanOrEqual(started - 5_000);
      // One UPDATE, the ORM's (no `as v` alias), writing both columns.
      const updates = QueryLog.matching(on(statements, 'lean_stamped'), /^update/i);
      expect(updates).toHaveLength(1);
      expect(updates[0]).not.toContain(' as v ');
      expect(updates[0]).toContain('"updated_at"');
      expect(updates[0]).toContain('"deleted_at"');
      return receipt;
    });

    expect((await waitForState(app().deletions, receipt.requestId!)).state).toBe('completed');
    expect(await countOf(sql, 'lean_stamped', 'id = ?', [id])).toBe(0);
    const [untouched] = await sql(`select deleted_at, updated_at from lean_stamped where id = ?`, [kept]);
    expect(untouched!.deleted_at).toBeNull();
    expect(time(untouched!.updated_at)).toBe(old.getTime());
  });

  describe('6. validators', () => {
    async function seedGuarded(shape: { frozen?: boolean; parts?: number; blockedParts?: number } = {}): Promise<number> {
      const [row] = await sql(`insert into lean_guarded (name, frozen) values ('guarded', ?) returning id`, [shape.frozen ?? false]);
      const id = Number(row!.id);
      await sql(`insert into lean_guarded_part (parent_id, blocked) select ?, false from generate_series(1, ?)`, [id, shape.parts ?? 0]);
      await sql(`insert into lean_guarded_part (parent_id, blocked) select ?, true from generate_series(1, ?)`, [id, shape.blockedParts ?? 0]);
      return id;
    }

    /** The row, its parts, its request rows and the queue: what a refused deletion must leave as it was. */
    async function footprint(id: number) {
      return {
        row: await sql(`select deleted_at, frozen from lean_guarded where id = ?`, [id]),
        parts: await countOf(sql, 'lean_guarded_part', 'parent_id = ?', [id]),
        requests: await countOf(sql, 'deletion_request', `entity = 'LeanGuarded' and parent_ids @> ?::jsonb`, [JSON.stringify([id])]),
        allRequests: await countOf(sql, 'deletion_request', 'true'),
        jobs: await app().queue.getJobCountByTypes('waiting', 'active', 'delayed', 'prioritized', 'failed'),
      };
    }

    it('an instance validator on the root refuses: DeletionBlockedError naming the row, nothing written, no job', async () => {
      const id = await seedGuarded({ frozen: true, parts: 2 });

      await whilePaused(app(), async () => {
        const before = await footprint(id);
        expect(before.row).toEqual([{ deleted_at: null, frozen: true }]);
        const error = await app().deletions.destroy(LeanGuarded, id).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(DeletionBlockedError);
        const blocked = error as DeletionBlockedError;
        expect(blocked.code).toBe('DELETION_BLOCKED');
        expect(blocked.getStatus()).toBe(409);
        expect(blocked.blockers).toEqual([{ entity: 'LeanGuarded', id, path: 'LeanGuarded', reason: 'frozen rows cannot be deleted' }]);
        expect(blocked.total).toBe(1);
        expect(await footprint(id)).toEqual({ ...before, requests: 0 });
        expect(before.requests).toBe(0);
      });
    });

    it('the same row with the flag unset is deleted, the set-based validators carried by the request row’s insert', async () => {
      const id = await seedGuarded({ frozen: true, parts: 2 });
      await sql(`update lean_guarded set frozen = false where id = ?`, [id]);

      const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanGuarded, id));

      expect(receipt).toEqual({ entity: 'LeanGuarded', id, status: 'pending', requestId: expect.any(String) });
      // The part's validator is a condition of the request's insert, not a query of its own.
      const inserts = QueryLog.matching(statements, /^insert into "deletion_request"/i);
      expect(inserts).toHaveLength(1);
      expect(inserts[0]).toMatch(/not exists \(select .*"lean_guarded_part"/i);
      expect(QueryLog.matching(on(statements, 'lean_guarded_part'), /^select/i)).toEqual([]);
      expect(QueryLog.matching(on(statements, 'lean_guarded'), /^update "lean_guarded" as v set "deleted_at"/i)).toHaveLength(1);

      expect((await waitForState(app().deletions, receipt.requestId!)).state).toBe('completed');
      expect(await countOf(sql, 'lean_guarded', 'id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_guarded_part', 'parent_id = ?', [id])).toBe(0);
    });

    it('a set-based validator on a child blocks the root, naming the child; nothing written, no job', async () => {
      const id = await seedGuarded({ parts: 2, blockedParts: 1 });
      const [blockedPart] = await ids(sql, 'lean_guarded_part', 'parent_id = ? and blocked', [id]);

      await whilePaused(app(), async () => {
        const before = await footprint(id);
        const error = await app().deletions.destroy(LeanGuarded, id).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(DeletionBlockedError);
        const blocked = error as DeletionBlockedError;
        expect(blocked.code).toBe('DELETION_BLOCKED');
        expect(blocked.blockers).toEqual([{ entity: 'LeanGuardedPart', id: blockedPart, path: 'LeanGuarded.parts', reason: 'blocked parts are kept' }]);
        expect(blocked.total).toBe(1);
        expect(await footprint(id)).toEqual(before);
        expect(before.row).toEqual([{ deleted_at: null, frozen: false }]);
        expect(before.parts).toBe(3);
        expect(before.requests).toBe(0);
      });
    });
  });

  describe('7. destroy relations', () => {
    it('children nothing observes go in one set-based DELETE, never loaded', async () => {
      const id = await seed(sql, 'lean_tree', [['lean_child_plain', 5]]);
      const bystander = await seed(sql, 'lean_tree', [['lean_child_plain', 2]], 'bystander');

      const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanTree, id));

      expect(receipt).toEqual({ entity: 'LeanTree', id, status: 'completed' });
      expect(await countOf(sql, 'lean_tree', 'id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_child_plain', 'parent_id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_tree', 'id = ?', [bystander])).toBe(1);
      expect(await countOf(sql, 'lean_child_plain', 'parent_id = ?', [bystander])).toBe(2);
      expect(on(statements, 'lean_child_plain')).toEqual([`delete from "lean_child_plain" as v where v."parent_id" in (?)`]);
      expect(QueryLog.matching(statements, /for update/i)).toHaveLength(1);
      expect(QueryLog.matching(on(statements, 'lean_tree'), /^delete/i)).toEqual([`delete from "lean_tree" as v where v."id" in (?)`]);
    });

    it('children with an @AfterDelete hook are loaded and removed one by one: the hook runs once per child', async () => {
      const id = await seed(sql, 'lean_grove', [['lean_child_hooked', 4]]);
      const childIds = await ids(sql, 'lean_child_hooked', 'parent_id = ?', [id]);
      const bystander = await seed(sql, 'lean_grove', [['lean_child_hooked', 2]], 'bystander');

      const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanGrove, id));

      expect(receipt).toEqual({ entity: 'LeanGrove', id, status: 'completed' });
      expect(journal('LeanChildHooked.afterDelete')).toEqual(childIds);
      expect(HookJournal.entries).toHaveLength(4);
      expect(await countOf(sql, 'lean_grove', 'id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_child_hooked', 'parent_id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_child_hooked', 'parent_id = ?', [bystander])).toBe(2);
      // The per-row path: the children are read under a lock, then deleted by key, not by parent.
      expect(QueryLog.matching(on(statements, 'lean_child_hooked'), /^select .* for update$/i)).toHaveLength(1);
      expect(QueryLog.matching(on(statements, 'lean_child_hooked'), /"parent_id" in/i).filter((s) => /^delete/i.test(s))).toEqual([]);
    });
  });

  describe('8. with the caller’s entity manager', () => {
    it('joins the caller’s transaction: the rows go at its commit', async () => {
      const id = await seedParent();
      const noteIds = await ids(sql, 'lean_parent_note', 'parent_id = ?', [id]);
      const bystander = await seedParent('bystander');

      const { result: receipt, statements } = await app().queries.record(() =>
        app()
          .orm.em.fork()
          .transactional(async (em) => {
            const receipt = await app().deletions.destroy(LeanParent, id, { em });
            // Not committed yet: another connection still sees every row.
            expect(await parentState(id)).toEqual({ parent: 1, children: 3, notes: 2 });
            return receipt;
          }),
      );

      expect(receipt).toEqual({ entity: 'LeanParent', id, status: 'completed' });
      expect(await parentState(id)).toEqual({ parent: 0, children: 0, notes: 0 });
      expect(await sql(`select id, parent_id from lean_parent_note where id in (?, ?) order by id`, noteIds)).toEqual(noteIds.map((n) => ({ id: n, parent_id: null })));
      expect(await parentState(bystander)).toEqual({ parent: 1, children: 3, notes: 2 });
      // A caller's entity manager keeps the flush: the parent's DELETE is the ORM's.
      const deletes = QueryLog.matching(on(statements, 'lean_parent'), /^delete/i);
      expect(deletes).toHaveLength(1);
      expect(deletes[0]).not.toContain(' as v ');
    });

    it('a rollback of the caller’s transaction leaves the row, its children and its notes', async () => {
      const id = await seedParent();

      const error = await app()
        .orm.em.fork()
        .transactional(async (em) => {
          await app().deletions.destroy(LeanParent, id, { em });
          throw new Error('the caller changes its mind');
        })
        .catch((e: unknown) => e);

      expect((error as Error).message).toBe('the caller changes its mind');
      expect(await parentState(id)).toEqual({ parent: 1, children: 3, notes: 2 });
      // And it can still be deleted afterwards.
      await expect(app().deletions.destroy(LeanParent, id)).resolves.toMatchObject({ status: 'completed' });
      expect(await parentState(id)).toEqual({ parent: 0, children: 0, notes: 0 });
    });
  });

  describe('9. two destroy() of the same row at once', () => {
    let admin: PgAdmin;
    beforeAll(async () => {
      admin = await PgAdmin.connect('deletion_lean_removal');
    });
    afterAll(() => admin?.close());

    /** Both deletions read the row and wait on its lock before either goes on: the losing interleaving, made certain. */
    async function race(table: string, id: number, destroy: () => Promise<DeletionReceipt>) {
      const lock = await RowLock.hold('deletion_lean_removal', table, id);
      const recorded = app().queries.record(() => Promise.allSettled([destroy(), destroy()]));
      try {
        await waitUntil(async () => (await admin.lockWaiters()).length === 2, 10_000, 'both deletions waiting on the row lock');
      } finally {
        await lock.release();
      }
      const { result, statements } = await recorded;
      const receipts = result.filter((r): r is PromiseFulfilledResult<DeletionReceipt> => r.status === 'fulfilled').map((r) => r.value);
      const errors = result.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      return { receipts, errors, statements };
    }

    it('delete mode: one succeeds, the other is a 404, and the policies run once', async () => {
      const id = await seedParent();
      const bystander = await seedParent('bystander');

      const { receipts, errors, statements } = await race('lean_parent', id, () => app().deletions.destroy(LeanParent, id));

      expect(receipts).toEqual([{ entity: 'LeanParent', id, status: 'completed' }]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(DeletionTargetNotFoundError);
      expect((errors[0] as DeletionTargetNotFoundError).getStatus()).toBe(404);
      expect((errors[0] as DeletionTargetNotFoundError).code).toBe('DELETION_TARGET_NOT_FOUND');
      expect(await parentState(id)).toEqual({ parent: 0, children: 0, notes: 0 });
      expect(await parentState(bystander)).toEqual({ parent: 1, children: 3, notes: 2 });
      // Each policy's statement ran once: the loser stopped at its locked select.
      expect(QueryLog.matching(statements, /^update "lean_parent_note"/i)).toHaveLength(1);
      expect(QueryLog.matching(statements, /^delete from "lean_parent_child"/i)).toHaveLength(1);
      expect(QueryLog.matching(statements, /^delete from "lean_parent" /i)).toHaveLength(1);
    });

    it('tombstone mode: one receipt, one request row, the other is a 404', async () => {
      const id = await seed(sql, 'lean_vault', []);
      await sql(`insert into lean_vault_kid (vault_id) select ? from generate_series(1, 3)`, [id]);

      const { receipts, errors } = await race('lean_vault', id, () => app().deletions.destroy(LeanVault, id));

      expect(receipts).toEqual([{ entity: 'LeanVault', id, status: 'pending', requestId: expect.any(String) }]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(DeletionTargetNotFoundError);
      expect((errors[0] as DeletionTargetNotFoundError).getStatus()).toBe(404);
      expect(await countOf(sql, 'deletion_request', `entity = 'LeanVault' and parent_ids @> ?::jsonb`, [JSON.stringify([id])])).toBe(1);
      expect((await waitForState(app().deletions, receipts[0]!.requestId!)).state).toBe('completed');
      expect(await countOf(sql, 'lean_vault', 'id = ?', [id])).toBe(0);
      expect(await countOf(sql, 'lean_vault_kid', 'vault_id = ?', [id])).toBe(0);
    });
  });
});

/** Records, for one entity, the removals an application subscriber is shown (afterDelete only). */
class AfterDeleteWatcher implements EventSubscriber<LeanWatched> {
  readonly seen: number[] = [];

  getSubscribedEntities() {
    return [LeanWatched];
  }

  afterDelete(args: EventArgs<LeanWatched>): void {
    this.seen.push(args.entity.id);
  }
}

/** A global subscriber that only listens to flushes: records, per flush, the LeanFlushed rows it deletes. */
class FlushWatcher implements EventSubscriber {
  readonly flushes: number[][] = [];

  afterFlush(args: FlushEventArgs): void {
    this.flushes.push(
      args.uow
        .getChangeSets()
        .filter((cs) => cs.type === ChangeSetType.DELETE && cs.meta.class === LeanFlushed)
        .map((cs) => (cs.entity as LeanFlushed).id),
    );
  }
}

describe('4. application subscribers registered after boot', () => {
  let booted: DeletionTestApp;
  const app = () => booted;
  const sql = sqlOf(app);

  beforeAll(async () => {
    booted = await createDeletionTestApp({
      database: 'deletion_lean_removal_subscribers',
      entities: [LeanWatched, LeanWatchedKid, LeanFlushed, LeanFlushedKid],
      deletion: { policies: [definePolicy(LeanWatched, { kids: 'deleteAll' }), definePolicy(LeanFlushed, { kids: 'deleteAll' })] },
    });
  });
  afterAll(() => booted?.close());

  const deletesOf = (statements: readonly string[], table: string) => QueryLog.matching(on(statements, table), /^delete/i);

  it('a subscriber for the entity, registered after boot, sees the parent’s removal exactly once', async () => {
    // Control: before anyone listens, the row goes with the module's own statement.
    const control = await seed(sql, 'lean_watched', [['lean_watched_kid', 2]], 'control');
    const before = await app().queries.record(() => app().deletions.destroy(LeanWatched, control));
    expect(deletesOf(before.statements, 'lean_watched')).toEqual([`delete from "lean_watched" as v where v."id" in (?)`]);

    const watcher = new AfterDeleteWatcher();
    app().orm.em.getEventManager().registerSubscriber(watcher);
    const id = await seed(sql, 'lean_watched', [['lean_watched_kid', 3]]);
    const bystander = await seed(sql, 'lean_watched', [['lean_watched_kid', 1]], 'bystander');

    const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanWatched, id));

    expect(receipt).toEqual({ entity: 'LeanWatched', id, status: 'completed' });
    expect(watcher.seen).toEqual([id]);
    expect(await countOf(sql, 'lean_watched', 'id = ?', [id])).toBe(0);
    expect(await countOf(sql, 'lean_watched_kid', 'parent_id = ?', [id])).toBe(0);
    expect(await countOf(sql, 'lean_watched_kid', 'parent_id = ?', [bystander])).toBe(1);
    const deletes = deletesOf(statements, 'lean_watched');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]).not.toContain(' as v ');
  });

  it('a global subscriber with only afterFlush is called for the destroy’s flush', async () => {
    const control = await seed(sql, 'lean_flushed', [['lean_flushed_kid', 1]], 'control');
    const before = await app().queries.record(() => app().deletions.destroy(LeanFlushed, control));
    expect(deletesOf(before.statements, 'lean_flushed')).toEqual([`delete from "lean_flushed" as v where v."id" in (?)`]);

    const watcher = new FlushWatcher();
    app().orm.em.getEventManager().registerSubscriber(watcher);
    const id = await seed(sql, 'lean_flushed', [['lean_flushed_kid', 3]]);

    const { result: receipt, statements } = await app().queries.record(() => app().deletions.destroy(LeanFlushed, id));

    expect(receipt).toEqual({ entity: 'LeanFlushed', id, status: 'completed' });
    expect(watcher.flushes.filter((deleted) => deleted.includes(id))).toEqual([[id]]);
    expect(await countOf(sql, 'lean_flushed', 'id = ?', [id])).toBe(0);
    expect(await countOf(sql, 'lean_flushed_kid', 'parent_id = ?', [id])).toBe(0);
    const deletes = deletesOf(statements, 'lean_flushed');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]).not.toContain(' as v ');
  });
});
