import type { EntityManager, EntityMetadata, Transaction } from '@mikro-orm/core';
import { EntityTable, quote } from './entity-table.js';
import { propertyOf } from './metadata.js';
import { query, run } from './execute.js';
import type { SqlFragment } from './rows-under.js';

/**
 * Locks the rows `keys` of `meta` (in key order, so overlapping lockers cannot deadlock) and
 * returns the keys found, as their JSON form; with `live`, only rows whose tombstone column is
 * still NULL count as found. `schema`: the rows' own schema (a change set's); `ctx`: see `query()`.
 */
export async function lockRows(
  em: EntityManager,
  meta: EntityMetadata,
  keys: readonly unknown[],
  live?: string,
  options: { schema?: string; ctx?: Transaction } = {},
): Promise<Set<string>> {
  const { keys: codec } = EntityTable.of(em, meta, options.schema);
  return new Set((await lockRowKeys(em, meta, keys, live, options)).map((key) => JSON.stringify(codec.toJson(key))));
}

/** `lockRows`, returning the keys found as the database gives them back. */
export async function lockRowKeys(
  em: EntityManager,
  meta: EntityMetadata,
  keys: readonly unknown[],
  live?: string,
  options: { schema?: string; ctx?: Transaction } = {},
): Promise<unknown[]> {
  const table = EntityTable.of(em, meta, options.schema);
  const chosen = table.keyIn(keys, 'v');
  const alive = live === undefined ? '' : ` and ${table.column(live, 'v')} is null`;
  const sql =
    `select ${table.selectKey('v', 'k')} from ${table.name} as v where ${chosen.sql}${table.andDiscriminator('v')}${alive} ` +
    `order by ${table.keyColumns('v').join(', ')} for update`;
  const rows = await query(em, sql, chosen.params, options.ctx);
  return rows.map((row) => table.keys.fromRow(row, 'k'));
}

/** The JSON form of a key, as `lockRows` reports found keys. */
export function keyToken(meta: EntityMetadata, key: unknown, em: EntityManager): string {
  const { keys } = EntityTable.of(em, meta);
  return JSON.stringify(keys.toJson(key));
}

/**
 * Deletes the rows `keys` of `meta` in one statement; `schema`: the change set's own schema, when
 * MikroORM gave the rows one. `tombstoned`: only rows whose tombstone column is set (a tombstoned
 * parent's last step).
 */
export async function deleteRows(
  em: EntityManager,
  meta: EntityMetadata,
  keys: readonly unknown[],
  options: { schema?: string; tombstoned?: string; also?: SqlFragment } = {},
): Promise<number> {
  const table = EntityTable.of(em, meta, options.schema);
  const chosen = table.keyIn(keys, 'v');
  const marked = options.tombstoned === undefined ? '' : ` and ${table.column(options.tombstoned, 'v')} is not null`;
  return runWith(em, options.also, { sql: `delete from ${table.name} as v where ${chosen.sql}${table.andDiscriminator('v')}${marked}`, params: chosen.params });
}

/**
 * Sets the tombstone property of the rows `keys` of `meta` to `value` in one statement (converted
 * as MikroORM converts that property's values), on rows not marked yet. Returns how many.
 */
export async function markRows(em: EntityManager, meta: EntityMetadata, keys: readonly unknown[], tombstone: string, value: unknown, also?: SqlFragment): Promise<number> {
  const table = EntityTable.of(em, meta);
  const chosen = table.keyIn(keys, 'v');
  const { customType } = propertyOf(meta, tombstone)!;
  const converted = customType ? customType.convertToDatabaseValue(value, em.getPlatform(), { mode: 'query' }) : value;
  const column = table.column(tombstone);
  return runWith(em, also, {
    sql: `update ${table.name} as v set ${column} = ? where ${chosen.sql}${table.andDiscriminator('v')} and ${table.column(tombstone, 'v')} is null`,
    params: [converted, ...chosen.params],
  });
}

/**
 * Runs `statement`, and `also` (an INSERT, UPDATE or DELETE of another table) in the same
 * statement as a data-modifying CTE: one round trip. Returns the rows `statement` changed.
 */
function runWith(em: EntityManager, also: SqlFragment | undefined, statement: SqlFragment): Promise<number> {
  return also ? run(em, `with also as (${also.sql}) ${statement.sql}`, [...also.params, ...statement.params]) : run(em, statement.sql, statement.params);
}

/**
 * The entity each of these rows of a single-table-inheritance entity really is, read from its
 * discriminator: by key token (`keyToken`), the metadata of the row's class.
 */
export async function rowClasses(em: EntityManager, meta: EntityMetadata, keys: readonly unknown[]): Promise<Map<string, EntityMetadata>> {
  const table = EntityTable.of(em, meta);
  const root = meta.root;
  const column = propertyOf(root, root.discriminatorColumn!)!.fieldNames[0]!;
  const chosen = table.keyIn(keys, 'v');
  const rows = await query(em, `select ${table.selectKey('v', 'k')}, v.${quote(column)} as d from ${table.name} as v where ${chosen.sql}`, chosen.params);
  const byValue = new Map(
    [...em.getMetadata().getAll().values()].filter((m) => m.root.class === root.class && m.discriminatorValue !== undefined).map((m) => [String(m.discriminatorValue), m]),
  );
  const classes = new Map<string, EntityMetadata>();
  for (const row of rows) {
    const real = byValue.get(String(row.d));
    if (real) {
      classes.set(JSON.stringify(table.keys.toJson(table.keys.fromRow(row, 'k'))), real);
    }
  }
  return classes;
}
