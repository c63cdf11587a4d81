import type { EntityManager, EntityMetadata } from '@mikro-orm/core';
import { EntityTable } from '../sql/entity-table.js';

/** A foreign key's `ON DELETE` action, as PostgreSQL stores it in `pg_constraint.confdeltype`. */
export type OnDeleteRule = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface ForeignKeyFacts {
  readonly name: string;
  readonly columns: readonly string[];
  readonly onDelete: OnDeleteRule;
  /** The referenced table, as PostgreSQL prints it (schema-qualified when off the search path). */
  readonly referencedTable: string;
}

export interface IndexFacts {
  readonly name: string;
  /** Key columns in order; an expression is an empty string. */
  readonly columns: readonly string[];
  /** A partial index (`WHERE ...`) does not serve a plain lookup by foreign key. */
  readonly partial: boolean;
  /** False while `CREATE INDEX CONCURRENTLY` is unfinished or failed. */
  readonly valid: boolean;
}

export interface TableFacts {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly { readonly name: string; readonly notNull: boolean }[];
  readonly foreignKeys: readonly ForeignKeyFacts[];
  readonly indexes: readonly IndexFacts[];
}

/** What the database really holds for the tables the declared policies touch. */
export interface SchemaFacts {
  /** `current_schema()`: tables in it are named without their schema. */
  readonly currentSchema: string;
  /** Per entity class name: its table, or `undefined` when the table does not exist. */
  readonly tables: ReadonlyMap<string, TableFacts | undefined>;
}

const ON_DELETE: Record<string, OnDeleteRule> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };

interface Row {
  entity: string;
  schema_name: string | null;
  table_name: string | null;
  current_schema: string | null;
  columns: { name: string; notNull: boolean }[];
  foreign_keys: { name: string; columns: string[]; onDelete: string; referencedTable: string }[];
  indexes: { name: string; columns: string[]; partial: boolean; valid: boolean }[];
}

/**
 * One query over the catalogs for the tables of `entities`: their columns (NOT NULL or not), their
 * foreign keys with the `ON DELETE` action, and their indexes' key columns. Each table is looked up
 * the way MikroORM names it in its queries (its schema, or unqualified and so through the
 * `search_path`); a table that does not exist comes back `undefined`.
 */
export async function inspectSchema(em: EntityManager, entities: readonly EntityMetadata[]): Promise<SchemaFacts> {
  const wanted = new Map(entities.map((meta) => [meta.className, relationName(em, meta)]));
  if (wanted.size === 0) {
    return { currentSchema: 'public', tables: new Map() };
  }
  const values = [...wanted].map(() => '(?, ?)').join(', ');
  const rows = await em.getConnection().execute<Row[]>(`${CATALOG_QUERY} (values ${values}) as wanted (entity, name) ${CATALOG_JOINS}`, [...wanted].flat(), 'all');
  const tables = new Map<string, TableFacts | undefined>();
  let currentSchema = 'public';
  for (const row of rows) {
    currentSchema = row.current_schema ?? currentSchema;
    tables.set(row.entity, row.table_name === null || row.schema_name === null ? undefined : toFacts(row, row.schema_name, row.table_name));
  }
  return { currentSchema, tables };
}

function toFacts(row: Row, schema: string, table: string): TableFacts {
  return {
    schema,
    table,
    columns: row.columns,
    foreignKeys: row.foreign_keys.map((fk) => ({ ...fk, onDelete: ON_DELETE[fk.onDelete] ?? 'no action' })),
    indexes: row.indexes,
  };
}

/** The table as MikroORM's query builder names it: `to_regclass()` resolves it the same way. */
function relationName(em: EntityManager, meta: EntityMetadata): string {
  return EntityTable.of(em, meta).regclass;
}

const CATALOG_QUERY = `
select wanted.entity, n.nspname as schema_name, c.relname as table_name, current_schema() as current_schema,
  coalesce((
    select json_agg(json_build_object('name', a.attname, 'notNull', a.attnotnull) order by a.attnum)
    from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  ), '[]') as columns,
  coalesce((
    select json_agg(json_build_object(
      'name', k.conname,
      'onDelete', k.confdeltype,
      'referencedTable', k.confrelid::regclass::text,
      'columns', (
        select json_agg(a.attname order by key.ord)
        from unnest(k.conkey) with ordinality as key (attnum, ord)
        join pg_attribute a on a.attrelid = k.conrelid and a.attnum = key.attnum
      )
    ) order by k.conname)
    from pg_constraint k where k.conrelid = c.oid and k.contype = 'f'
  ), '[]') as foreign_keys,
  coalesce((
    select json_agg(json_build_object(
      'name', ic.relname,
      'partial', i.indpred is not null,
      'valid', i.indisvalid,
      'columns', (
        select json_agg(coalesce(a.attname::text, '') order by key.ord)
        from unnest(i.indkey::int2[]) with ordinality as key (attnum, ord)
        left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = key.attnum
        where key.ord <= i.indnkeyatts
      )
    ) order by ic.relname)
    from pg_index i join pg_class ic on ic.oid = i.indexrelid where i.indrelid = c.oid
  ), '[]') as indexes
from`;

const CATALOG_JOINS = `
left join pg_class c on c.oid = to_regclass(wanted.name) and c.relkind in ('r', 'p')
left join pg_namespace n on n.oid = c.relnamespace`;
