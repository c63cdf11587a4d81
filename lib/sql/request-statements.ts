import type { EntityDictionary, EntityManager, EntityMetadata } from '@mikro-orm/core';
import type { RelationPolicy } from '../registry/policy-registry.js';
import { EntityTable } from './entity-table.js';
import { propertyOf } from './metadata.js';
import { query, run } from './execute.js';
import type { SqlFragment } from './rows-under.js';

/** The columns of a request row, in the order `insertRequest` takes their values. */
export const REQUEST_COLUMNS = ['id', 'rootId', 'parentId', 'entity', 'parentIds', 'path', 'progress', 'ownWorkDone', 'tombstone', 'state', 'attempts', 'origin'] as const;

/**
 * `insert into deletion_request …` of one row, from the request entity's metadata (plain SQL: it is
 * on every deletion's request path). With a `guard`, `insert … select … where <guard>`: the row is
 * inserted only where the deletion's checks hold. Returns whether a row was inserted.
 */
export async function insertRequest(em: EntityManager, requests: EntityMetadata, row: Readonly<Record<(typeof REQUEST_COLUMNS)[number], unknown>>, guard?: SqlFragment): Promise<boolean> {
  const table = EntityTable.of(em, requests);
  const values = REQUEST_COLUMNS.map((name) => databaseValue(em, requests, name, row[name]));
  const columns = `insert into ${table.name} (${REQUEST_COLUMNS.map((name) => table.column(name)).join(', ')})`;
  const placeholders = values.map(() => '?').join(', ');
  const [sql, params] = guard ? [`${columns} select ${placeholders} where ${guard.sql}`, [...values, ...guard.params]] : [`${columns} values (${placeholders})`, values];
  return (await run(em, sql, params)) > 0;
}

/** A request property's value as MikroORM writes it (its type's conversion: JSON, dates). */
function databaseValue(em: EntityManager, requests: EntityMetadata, name: string, value: unknown): unknown {
  const { customType } = propertyOf(requests, name)!;
  return customType ? customType.convertToDatabaseValue(value, em.getPlatform(), { mode: 'query' }) : value;
}

/**
 * Locks a request row (`select … for update`) and maps it as `findOne()` would: a managed
 * entity, or null when there is no such row. Plain SQL: the queue locks its request once per batch.
 */
export async function lockRequest<T extends object>(em: EntityManager, requests: EntityMetadata<T>, id: string): Promise<T | null> {
  const table = EntityTable.of(em, requests);
  const [row] = await query<EntityDictionary<T>>(em, `select * from ${table.name} where ${table.column('id')} = ? for update`, [id]);
  return row ? em.map(requests.class, row) : null;
}

/**
 * Sets columns of a request row by id, each value converted as MikroORM converts it (JSON, dates).
 * For a row the caller holds locked; the entity it mapped is left as it was, so a flush after this
 * writes nothing more for it.
 */
export async function updateRequest(em: EntityManager, requests: EntityMetadata, id: string, values: Readonly<Record<string, unknown>>): Promise<void> {
  const table = EntityTable.of(em, requests);
  const names = Object.keys(values);
  const params = names.map((name) => databaseValue(em, requests, name, values[name]));
  await run(em, `update ${table.name} set ${names.map((name) => `${table.column(name)} = ?`).join(', ')} where ${table.column('id')} = ?`, [...params, id]);
}

/**
 * Merges `entries` into a request row's progress (`progress || entries`, one statement): the paths
 * of synchronous policies its deletion ran in the request's own transaction.
 */
export async function addRequestProgress(em: EntityManager, requests: EntityMetadata, id: string, entries: Readonly<Record<string, unknown>>): Promise<void> {
  const { sql, params } = requestProgressUpdate(em, requests, id, entries);
  await run(em, sql, params);
}

/** The statement of `addRequestProgress`, for a caller that runs it within another (see `deleteRows`, `markRows`). */
export function requestProgressUpdate(em: EntityManager, requests: EntityMetadata, id: string, entries: Readonly<Record<string, unknown>>): SqlFragment {
  const table = EntityTable.of(em, requests);
  const progress = table.column('progress');
  return { sql: `update ${table.name} set ${progress} = ${progress} || ?::jsonb where ${table.column('id')} = ?`, params: [JSON.stringify(entries), id] };
}

/**
 * The sweeper's one statement: distinct foreign-key values of `relation`'s children with no parent
 * row, not listed in an open request that walks the same relation (`walkers`: the entities whose
 * requests walk it, the declaring entity and those inheriting it). Keys are compared as the
 * columns' text, so a request's JSON (numbers for integer keys, strings for bigint, uuid, varchar)
 * matches whatever the key type. One snapshot: a parent deleted by a transaction that commits
 * meanwhile is seen either with its row or with its request.
 */
export async function missingParents(em: EntityManager, relation: RelationPolicy, walkers: readonly string[], requests: EntityMetadata, limit: number): Promise<unknown[]> {
  const child = EntityTable.of(em, relation.childMeta);
  const parent = EntityTable.of(em, relation.parentMeta.root);
  const request = EntityTable.of(em, requests);
  const fk = child.column(relation.childProperty, 'c');
  const sql =
    `select distinct ${fk} as "p0" from ${child.name} as c ` +
    `where ${fk} is not null${child.andDiscriminator('c')} ` +
    `and not exists (select 1 from ${parent.name} as p where ${parent.keyExpression('p')} = ${fk}) ` +
    `and not exists (select 1 from ${request.name} as r ` +
    `where r.${request.column('entity')} in (${walkers.map(() => '?').join(', ')}) and r.${request.column('state')} in ('pending', 'running') and jsonb_exists(r.${request.column('progress')}, ?) ` +
    `and exists (select 1 from jsonb_array_elements_text(r.${request.column('parentIds')}) as walked (key) where walked.key = ${fk}::text)) ` +
    `order by 1 limit ?`;
  const rows = await query(em, sql, [...walkers, relation.relation, limit]);
  return rows.map((row) => parent.keys.fromRow(row, 'p'));
}

/**
 * Removes the deletions completed before `before`: every request of a root whose whole family is
 * completed, the root completed before `before`, and their orphan records. One statement.
 */
export async function pruneCompleted(
  em: EntityManager,
  requests: EntityMetadata,
  orphans: EntityMetadata,
  before: Date,
): Promise<{ deletions: number; requests: number; orphans: number }> {
  const request = EntityTable.of(em, requests);
  const orphan = EntityTable.of(em, orphans);
  const col = (name: string, alias?: string) => request.column(name, alias);
  const sql =
    `with roots as (select r.${col('id')} as id from ${request.name} as r ` +
    `where r.${col('id')} = r.${col('rootId')} and r.${col('state')} = 'completed' and r.${col('completedAt')} < ? ` +
    `and not exists (select 1 from ${request.name} as o where o.${col('rootId')} = r.${col('id')} and o.${col('state')} <> 'completed')), ` +
    `family as (delete from ${request.name} as f using roots where f.${col('rootId')} = roots.id returning f.${col('id')} as id), ` +
    `gone as (delete from ${orphan.name} as g using family where g.${orphan.column('requestId')} = family.id returning 1) ` +
    `select (select count(*) from roots) as deletions, (select count(*) from family) as requests, (select count(*) from gone) as orphans`;
  const [row] = await query<{ deletions: string; requests: string; orphans: string }>(em, sql, [before]);
  return { deletions: Number(row?.deletions ?? 0), requests: Number(row?.requests ?? 0), orphans: Number(row?.orphans ?? 0) };
}
