import { LockMode, QueryOrder, type EntityManager, type QueryOrderMap, type EntityMetadata, type FilterQuery } from '@mikro-orm/core';
import type { RelationPolicy } from '../registry/policy-registry.js';
import { EntityKeys } from './entity-keys.js';
import { EntityTable, quote } from './entity-table.js';
import { propertyOf } from './metadata.js';
import { count, query, run } from './execute.js';
import { rowsUnder, type RowsUnder, type SqlFragment } from './rows-under.js';

/**
 * The statements a policy issues for one relation and a set of parent keys. Each names the child
 * table as MikroORM resolves it and keeps to the relation's target (a subclass's rows only, for a
 * relation typed to one). Filters never apply: a deletion must see every child that references
 * the parent, whatever the application hides.
 */
export class RelationStatements {
  private readonly hop;

  constructor(private readonly relation: RelationPolicy) {
    // The parents are the given keys: their table need not be joined, whatever their subclass.
    this.hop = [{ property: relation.childProperty, lower: relation.childMeta, upper: relation.parentMeta.root }] as const;
  }

  /** The children of these parents: `from` and `where` over the child table, aliased `v`. */
  private children(em: EntityManager, parentIds: readonly unknown[]) {
    return rowsUnder(em, this.relation.childMeta, this.hop, parentIds);
  }

  /**
   * The children not yet marked for deletion (tombstone mode): a marked child's own request is
   * deleting it, so walking it again would file another request for the same row, forever.
   */
  private liveChildren(em: EntityManager, parentIds: readonly unknown[]) {
    const rows = this.children(em, parentIds);
    const tombstone = this.relation.childTombstone;
    return tombstone === undefined ? rows : { ...rows, where: { ...rows.where, sql: `${rows.where.sql} and ${rows.table.column(tombstone, 'v')} is null` } };
  }

  /**
   * The children after `after` in key order (exclusive), all of them when undefined: a keyset batch
   * starts there, so it does not step over the rows earlier batches deleted (PostgreSQL keeps their
   * index entries until a vacuum, and a scan from the start reads them all again, every batch).
   * `after` is the key's text as PostgreSQL prints it, compared as the column's own type (never a
   * JavaScript number, which cannot hold every bigint).
   */
  private childrenAfter(em: EntityManager, parentIds: readonly unknown[], after: string | undefined) {
    return startingAfter(this.children(em, parentIds), after);
  }

  /** How many children (for `restrict`); pivot rows for a many-to-many relation. */
  async count(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    if (this.relation.kind === 'm:n') {
      return countPivotRows(em, this.relation, { sql: placeholders(parentIds.length), params: bindAll(em, this.relation.parentMeta, parentIds) });
    }
    const { from, where } = this.children(em, parentIds);
    return count(em, `select count(*) as n from ${from} where ${where.sql}`, where.params);
  }

  /** `deleteAll`: one DELETE of every child. */
  async deleteAll(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    const { table, where } = this.children(em, parentIds);
    return run(em, `delete from ${table.name} as v where ${where.sql}`, where.params);
  }

  /** `nullify`: one UPDATE that detaches every child. */
  async nullify(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    const { table, where } = this.children(em, parentIds);
    return run(em, `update ${table.name} as v set ${table.column(this.relation.childProperty)} = null where ${where.sql}`, where.params);
  }

  /** Whether any child is left that is not already being deleted (a tombstoned parent waits for those). */
  async any(em: EntityManager, parentIds: readonly unknown[]): Promise<boolean> {
    const { from, where } = this.liveChildren(em, parentIds);
    const rows = await query(em, `select 1 from ${from} where ${where.sql} limit 1`, where.params);
    return rows.length > 0;
  }

  /**
   * One keyset page of children, loaded as entities (their hooks and validators need them), in key
   * order after `cursor` (exclusive). MikroORM builds the query, so the entity's own mapping applies.
   */
  async page<T extends object>(em: EntityManager, parentIds: readonly unknown[], cursor: unknown, limit: number): Promise<T[]> {
    const child = EntityTable.of(em, this.relation.childMeta);
    const pk = child.keys.columns[0]!.property;
    const where: Record<string, unknown> = { [this.relation.childProperty]: { $in: [...parentIds] } };
    if (cursor !== undefined && cursor !== null) {
      where[pk] = { $gt: cursor };
    }
    if (this.relation.childTombstone !== undefined) {
      where[this.relation.childTombstone] = null;
    }
    // Locked: a child moved to another parent, or deleted, after this page is read cannot be deleted
    // as this parent's (PostgreSQL re-checks a row the lock waited for, and drops it if it moved).
    return em.find(this.relation.childMeta.class as new () => T, where as FilterQuery<T>, {
      orderBy: { [pk]: QueryOrder.ASC } as QueryOrderMap<T>,
      limit,
      filters: false,
      lockMode: LockMode.PESSIMISTIC_WRITE,
    });
  }

  /**
   * The keys of the next `limit` children in key order after `after` (exclusive; from the first
   * when undefined), locked: the rows a `deleteAllAsync` batch deletes; `last`: the last one's text.
   */
  async nextKeys(em: EntityManager, parentIds: readonly unknown[], limit: number, after?: string): Promise<{ keys: unknown[]; last: string | undefined }> {
    const { table, from, where } = this.childrenAfter(em, parentIds, after);
    // Locked: the validators that run next see these rows as they will be deleted (a row flagged or
    // moved meanwhile waits, and is re-checked).
    const rows = await query(
      em,
      `select ${table.selectKey('v', 'k')}, ${singleKey(table, 'v')}::text as ${quote('last')} from ${from} where ${where.sql} order by ${table.keyColumns('v').join(', ')} limit ? for update of v`,
      [...where.params, limit],
    );
    return { keys: rows.map((row) => table.keys.fromRow(row, 'k')), last: lastKey(rows.at(-1)) };
  }

  /**
   * `deleteAllAsync` after its validators passed: deletes exactly `keys` (the rows they passed,
   * locked), and only while they still belong to these parents.
   */
  async deleteKeys(em: EntityManager, parentIds: readonly unknown[], keys: readonly unknown[]): Promise<number> {
    const { table, where } = this.children(em, parentIds);
    const chosen = table.keyIn(keys, 'v');
    return run(em, `delete from ${table.name} as v where ${where.sql} and ${chosen.sql}`, [...where.params, ...chosen.params]);
  }

  /**
   * `deleteAllAsync` with no validators: chooses the next `limit` children in key order after
   * `after` and deletes those that still belong to these parents, in one statement. Returns how many
   * it chose (`batch`: fewer than `limit` means none is left after them), how many it deleted (a
   * chosen row another transaction moved to another parent, or deleted, meanwhile is re-checked and
   * left, so `deleted` alone cannot say whether the walk is over) and the last key chosen.
   */
  async deleteNextBatch(em: EntityManager, parentIds: readonly unknown[], limit: number, after?: string): Promise<{ batch: number; deleted: number; last: string | undefined }> {
    const rows = this.children(em, parentIds);
    const { table, where } = rows;
    const next = startingAfter(rows, after);
    const key = singleKey(table, 'v');
    // The batch goes through an array: chosen once and its rows found by key, where `in (select ...)`
    // lets the planner hash-join it against a scan of every child of the parent, on every batch.
    const sql =
      `with b as (select ${key} as ${quote('k0')} from ${next.from} where ${next.where.sql} order by ${key} limit ?), ` +
      `gone as (delete from ${table.name} as v where ${where.sql} and ${key} = any(array(select b.${quote('k0')} from b)) returning 1) ` +
      `select (select count(*) from b) as batch, (select count(*) from gone) as deleted, ${lastOf('b')}`;
    const [row] = await query<{ batch: string; deleted: string }>(em, sql, [...next.where.params, limit, ...where.params]);
    return { batch: Number(row?.batch ?? 0), deleted: Number(row?.deleted ?? 0), last: lastKey(row) };
  }

  /**
   * `deleteAllAsync` with validators, in one statement: locks the next `limit` children in key
   * order, evaluates `checks` (conditions on the row alias `v` alone) on each locked row as it is
   * now, and deletes the batch only when none holds. Returns the batch's size, how many rows a
   * check refused (then nothing was deleted, and the rows stay locked for the caller to name the
   * blockers), and how many were deleted.
   */
  async deleteCheckedBatch(
    em: EntityManager,
    parentIds: readonly unknown[],
    limit: number,
    checks: readonly SqlFragment[],
    after?: string,
  ): Promise<{ batch: number; blocked: number; deleted: number; last: string | undefined }> {
    const { table, from, where } = this.childrenAfter(em, parentIds, after);
    const blocked = checks.length === 0 ? 'false' : checks.map((check) => `coalesce(${check.sql}, false)`).join(' or ');
    // The locked rows by key, through an array (a join lets the planner hash the batch against a
    // scan of the whole table; see `deleteNextBatch`).
    const locked = `where ${singleKey(table, 'd')} = any(array(select b.${quote('k0')} from b))`;
    // The checks sit in the locking select: a row changed while this statement waited for its lock
    // is checked as it is after that change, as the separate validator statement would see it.
    const sql =
      `with b as (select ${table.selectKey('v', 'k')}, (${blocked}) as blocked from ${from} where ${where.sql} ` +
      `order by ${table.keyColumns('v').join(', ')} limit ? for update of v), ` +
      `gone as (delete from ${table.name} as d ${locked} and not exists (select 1 from b where b.blocked) returning 1) ` +
      `select (select count(*) from b) as batch, (select count(*) from b where b.blocked) as blocked, (select count(*) from gone) as deleted, ${lastOf('b')}`;
    const [row] = await query<{ batch: string; blocked: string; deleted: string }>(em, sql, [...checks.flatMap((check) => check.params), ...where.params, limit]);
    return { batch: Number(row?.batch ?? 0), blocked: Number(row?.blocked ?? 0), deleted: Number(row?.deleted ?? 0), last: lastKey(row) };
  }

  /**
   * `nullifyThenPurge`: detaches the children and records exactly which rows it detached, in one
   * statement (`UPDATE ... RETURNING` feeding an `INSERT`), so the purge never touches rows whose
   * foreign key was already NULL. Keys are recorded as the column's text.
   */
  async nullifyAndRecord(em: EntityManager, parentIds: readonly unknown[], orphans: EntityMetadata, requestId: string): Promise<number> {
    const { table, where } = this.children(em, parentIds);
    const record = EntityTable.of(em, orphans);
    const sql =
      `with detached as (update ${table.name} as v set ${table.column(this.relation.childProperty)} = null where ${where.sql} ` +
      `returning ${table.keyColumns('v')[0]}::text as row_id) ` +
      `insert into ${record.name} (${record.column('requestId')}, ${record.column('relation')}, ${record.column('rowId')}) ` +
      `select ?, ?, row_id from detached`;
    return run(em, sql, [...where.params, requestId, this.relation.relation]);
  }

  /**
   * `destroy`: loads the children one keyset page at a time and removes them (`remove`) through a
   * fork of the ORM that shares the transaction, so their lifecycle hooks and subscribers fire and
   * their own policies apply. Memory holds one page, whatever the child count.
   */
  async destroyPages(
    em: EntityManager,
    parentIds: readonly unknown[],
    pageSize: number,
    remove: (fork: EntityManager, entities: readonly object[]) => Promise<number>,
    skip?: (key: unknown) => boolean,
  ): Promise<number> {
    const keys = EntityKeys.of(this.relation.childMeta);
    let cursor: unknown;
    let destroyed = 0;
    for (;;) {
      const fork = em.fork({ clear: true, keepTransactionContext: true });
      const page = await this.page<Record<string, unknown>>(fork, parentIds, cursor, pageSize);
      destroyed += await remove(fork, skip ? page.filter((row) => !skip(keys.ofEntity(row))) : page);
      if (page.length < pageSize) {
        return destroyed;
      }
      cursor = keys.ofEntity(page.at(-1)!);
    }
  }
}

/**
 * Pivot rows of a many-to-many relation whose owning side is among `owners` (an SQL list or
 * subquery of the owning rows' keys, with its parameters). The targets are shared, never counted.
 */
export async function countPivotRows(em: EntityManager, relation: RelationPolicy, owners: SqlFragment): Promise<number> {
  const prop = propertyOf(relation.parentMeta, relation.relation)!;
  const owning = prop.owner ? prop : propertyOf(relation.childMeta, prop.mappedBy)!;
  const columns = prop.owner ? owning.joinColumns : owning.inverseJoinColumns;
  const pivot = EntityTable.of(em, em.getMetadata().find(owning.pivotEntity)!);
  const column = columns.length === 1 ? quote(columns[0]!) : `(${columns.map(quote).join(', ')})`;
  return count(em, `select count(*) as n from ${pivot.name} where ${column} in (${owners.sql})`, owners.params);
}

/** A subquery of the keys of the rows `from … where …` (aliased `v`). */
export function keysOf(table: EntityTable, from: string, where: SqlFragment): SqlFragment {
  return { sql: `select ${table.keyColumns('v').join(', ')} from ${from} where ${where.sql}`, params: where.params };
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ') || 'null';
}

function bindAll(em: EntityManager, meta: EntityMetadata, keys: readonly unknown[]): unknown[] {
  const { keys: codec } = EntityTable.of(em, meta);
  return keys.flatMap((key) => codec.bind(key));
}

/**
 * The key column of a `deleteAllAsync` child: the policy takes single-column keys only (composite
 * children are refused at boot), and its batch statements rely on it.
 */
function singleKey(table: EntityTable, alias: string): string {
  const columns = table.keyColumns(alias);
  if (columns.length !== 1) {
    throw new Error(`${table.meta.className}: a deleteAllAsync batch needs a single-column primary key.`);
  }
  return columns[0]!;
}

/** `rows` narrowed to the keys after `after` (the key's text, compared as the column's type). */
function startingAfter(rows: RowsUnder, after: string | undefined): RowsUnder {
  if (after === undefined) {
    return rows;
  }
  const { table, where } = rows;
  return { ...rows, where: { sql: `${where.sql} and ${singleKey(table, 'v')} > ?`, params: [...where.params, after] } };
}

/** The last key of a batch `b` (its column `k0`) as text, selected as `"last"` for `lastKey`. */
function lastOf(batch: string): string {
  return `(select ${batch}.${quote('k0')}::text from ${batch} order by ${batch}.${quote('k0')} desc limit 1) as ${quote('last')}`;
}

/** The text of the last key a batch statement chose, undefined when it chose none. */
function lastKey(row: Record<string, unknown> | undefined): string | undefined {
  const last = row?.['last'];
  return last === null || last === undefined ? undefined : String(last);
}
