import type { EntityManager, EntityMetadata } from '@mikro-orm/core';
import { EntityTable } from './entity-table.js';

/**
 * One step up a relation path: rows of `lower` point at rows of `upper` through the many-to-one
 * (or owning one-to-one) `property`. `upper` is the entity whose rows are the parents on this path:
 * a subclass when the path goes through a relation only that subclass declares, so the join keeps
 * to its rows.
 */
export interface StepHop {
  readonly kind?: 'step';
  readonly property: string;
  readonly lower: EntityMetadata;
  readonly upper: EntityMetadata;
}

/**
 * Every level of a self-referencing relation at once: rows of `lower` that descend, one or more
 * steps through any of `properties` (many-to-ones to the same table), from rows of `upper`.
 */
export interface ClosureHop {
  readonly kind: 'closure';
  readonly properties: readonly string[];
  readonly lower: EntityMetadata;
  readonly upper: EntityMetadata;
}

export type Hop = StepHop | ClosureHop;

/** An SQL fragment with `?` placeholders and its parameters, in order. */
export interface SqlFragment {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** The `from … where …` of the rows on a relation path under the deleted rows, aliased `v`. */
export interface RowsUnder {
  readonly table: EntityTable;
  /** `"book" as v join "author" as j1 on …` */
  readonly from: string;
  /** The conditions: the discriminators on the path, and the foreign key (or key) among the ids. */
  readonly where: SqlFragment;
}

/**
 * The rows of `meta` under the rows `ids` of the path's top entity, following `hops` (nearest
 * first; none: the rows `ids` themselves). Joins the path's tables, each resolved and restricted to
 * its single-table-inheritance subclass as MikroORM would, and compares the last foreign key with
 * the ids; a self-referencing stretch of the path is one recursive query, whatever its depth. The
 * statement's text depends only on the path and the number of ids, never on their values.
 */
export function rowsUnder(em: EntityManager, meta: EntityMetadata, hops: readonly Hop[], ids: readonly unknown[]): RowsUnder {
  const table = EntityTable.of(em, meta);
  const conditions: string[] = [];
  const params: unknown[] = [];
  const joins: string[] = [];
  const own = table.discriminator('v');
  if (own) {
    conditions.push(own);
  }
  if (hops.length === 0) {
    const keys = table.keyIn(ids, 'v');
    conditions.push(keys.sql);
    params.push(...keys.params);
  }
  let lower = table;
  let lowerAlias = 'v';
  for (const [i, hop] of hops.entries()) {
    if (hop.kind === 'closure') {
      const descendants = closure(em, hop, hops.slice(i + 1), ids);
      conditions.push(`${lower.keyExpression(lowerAlias)} in (${descendants.sql})`);
      params.push(...descendants.params);
      break;
    }
    const upper = EntityTable.of(em, hop.upper);
    const foreignKey = lower.column(hop.property, lowerAlias);
    const last = i === hops.length - 1;
    const restricted = upper.discriminator() !== undefined;
    if (last && !restricted) {
      // The parent rows need not be read: their keys are the ids.
      const keys = upper.keysAt(foreignKey, ids);
      conditions.push(keys.sql);
      params.push(...keys.params);
      break;
    }
    const alias = `j${i + 1}`;
    joins.push(`join ${upper.name} as ${alias} on ${upper.keyExpression(alias)} = ${foreignKey}`);
    const discriminator = upper.discriminator(alias);
    if (discriminator) {
      conditions.push(discriminator);
    }
    if (last) {
      const keys = upper.keyIn(ids, alias);
      conditions.push(keys.sql);
      params.push(...keys.params);
    }
    lower = upper;
    lowerAlias = alias;
  }
  return {
    table,
    from: [`${table.name} as v`, ...joins].join(' '),
    where: { sql: conditions.join(' and '), params },
  };
}

/**
 * `with recursive` over a self-referencing relation: the keys of every row that descends from the
 * path's rows at `hop.upper` (the seed, itself under `ids` through `above`). `union` keeps each row
 * once, so a cycle in the data ends the recursion.
 */
function closure(em: EntityManager, hop: ClosureHop, above: readonly Hop[], ids: readonly unknown[]): SqlFragment {
  const child = EntityTable.of(em, hop.lower);
  const seeds = rowsUnder(em, hop.upper, above, ids);
  const seedKeys = `select ${seeds.table.keyColumns('v').join(', ')} from ${seeds.from} where ${seeds.where.sql}`;
  const firstLevel = hop.properties.map((property) => `${child.column(property, 'c')} in (${seedKeys})`).join(' or ');
  const nextLevel = hop.properties.map((property) => `${child.column(property, 'c')} = closure.k`).join(' or ');
  const onlyChildren = child.andDiscriminator('c');
  const key = child.keyColumns('c')[0]!;
  return {
    sql:
      `with recursive closure(k) as (select ${key} from ${child.name} as c where (${firstLevel})${onlyChildren} ` +
      `union select ${key} from ${child.name} as c join closure on (${nextLevel})${onlyChildren ? ` where ${child.discriminator('c')}` : ''}) ` +
      `select k from closure`,
    params: hop.properties.flatMap(() => seeds.where.params),
  };
}
