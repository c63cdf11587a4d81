import type { EntityManager, EntityMetadata } from '@mikro-orm/core';
import { EntityTable } from './entity-table.js';

/**
 * One step up a relation path: rows of `lower` point at rows of `upper` through the many-to-one
 * (or owning one-to-one) `property`. `upper` is the entity whose rows are the parents on this path:
 * a subclass when the path goes through a relation only that subclass declares, so the join keeps
 * to its rows.
 */
export interface Hop {
  readonly property: string;
  readonly lower: EntityMetadata;
  readonly upper: EntityMetadata;
}

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
 * the ids: the statement's text depends only on the path and the number of ids, never on their
 * values.
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
  hops.forEach((hop, i) => {
    const upper = EntityTable.of(em, hop.upper);
    const foreignKey = lower.column(hop.property, lowerAlias);
    const last = i === hops.length - 1;
    const restricted = upper.discriminator() !== undefined;
    if (last && !restricted) {
      // The parent rows need not be read: their keys are the ids.
      const keys = upper.keysAt(foreignKey, ids);
      conditions.push(keys.sql);
      params.push(...keys.params);
      return;
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
  });
  return {
    table,
    from: [`${table.name} as v`, ...joins].join(' '),
    where: { sql: conditions.join(' and '), params },
  };
}
