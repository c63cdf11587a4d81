import { QueryFlag, raw, type EntityManager, type EntityMetadata } from '@mikro-orm/core';
import type { QBFilterQuery, SqlEntityManager } from '@mikro-orm/postgresql';
import type { SetValidatorOptions } from '../decorators/validate-before-destroy.decorator.js';
import { EntityTable } from './entity-table.js';
import { rowsUnder, type Hop, type SqlFragment } from './rows-under.js';

/**
 * The statements of set-based validators (and of `restrict`s checked from afar): "does a row on
 * this path under these ids match the validator's `where`", and a sample of such rows with their
 * total. The path part is built here from the metadata; the validator's `where` is compiled by
 * MikroORM's query builder once per validator, entity and schema, as a condition on the row alias
 * `v` that holds no id. So a statement's text depends on the path, the validator and the number of
 * ids only, and reusing a compiled condition can never check other rows than the ones asked for.
 */
export class ValidatorStatements {
  private readonly conditions = new WeakMap<object, Map<string, SqlFragment>>();
  /** The compiled conditions that read the row `v` alone (see `rowCondition`). */
  private readonly ownRow = new WeakSet<SqlFragment>();

  /** `select 1 from <rows under ids> where … and <where>`: a row that blocks. */
  exists(em: EntityManager, meta: EntityMetadata, hops: readonly Hop[], ids: readonly unknown[], set?: SetValidatorOptions): SqlFragment {
    const { from, where } = rowsUnder(em, meta, hops, ids);
    const condition = set ? this.condition(em, meta, set) : undefined;
    return {
      sql: `select 1 from ${from} where ${where.sql}${condition ? ` and ${condition.sql}` : ''}`,
      params: [...where.params, ...(condition?.params ?? [])],
    };
  }

  /**
   * A sample of up to `cap` blocking rows in key order, each with the total in `blocked_total`;
   * their keys are `k0`, `k1`, … (`EntityKeys.fromRow(row, 'k')`).
   */
  sample(em: EntityManager, meta: EntityMetadata, hops: readonly Hop[], ids: readonly unknown[], set: SetValidatorOptions, cap: number): SqlFragment & { table: EntityTable } {
    const { table, from, where } = rowsUnder(em, meta, hops, ids);
    const condition = this.condition(em, meta, set);
    return {
      table,
      sql:
        `select ${table.selectKey('v', 'k')}, count(*) over() as blocked_total from ${from} ` +
        `where ${where.sql} and ${condition.sql} order by ${table.keyColumns('v').join(', ')} limit ?`,
      params: [...where.params, ...condition.params, cap],
    };
  }

  /**
   * The validator's `where` as a condition on the columns of the row `v` alone (no join, no
   * subquery), or `undefined` when it reads other rows: what a statement can evaluate on a row as
   * it locks it (a subquery would read the statement's older snapshot).
   */
  rowCondition(em: EntityManager, meta: EntityMetadata, set: SetValidatorOptions): SqlFragment | undefined {
    const condition = this.condition(em, meta, set);
    return this.ownRow.has(condition) ? condition : undefined;
  }

  /**
   * The validator's `where` as a condition on `v`. MikroORM renders `select 1 from <table> as v
   * where <condition>` when the condition needs no join: that condition is used as it is.
   * Otherwise (a condition on a relation's columns) the rows' keys are matched against the query.
   */
  condition(em: EntityManager, meta: EntityMetadata, set: SetValidatorOptions): SqlFragment {
    const table = EntityTable.of(em, meta);
    const cacheKey = `${meta.className}\0${table.name}`;
    let byKey = this.conditions.get(set);
    const kept = byKey?.get(cacheKey);
    if (kept) {
      return kept;
    }
    const builder = () =>
      (em as SqlEntityManager)
        .createQueryBuilder(meta.class as new () => object, 'v')
        // The query builder types its conditions apart from FilterQuery, yet runs them through the same QueryHelper.processWhere().
        .where(set.where as QBFilterQuery<object, 'v'>)
        .setFlag(QueryFlag.DISABLE_PAGINATE);
    const plain = builder().select(raw('1'));
    const sql = plain.getQuery();
    const prefix = `select 1 from ${table.name} as "v" where `;
    const condition: SqlFragment = sql.startsWith(prefix)
      ? { sql: `(${sql.slice(prefix.length)})`, params: [...plain.getParams()] }
      : (() => {
          const keyed = builder().select(table.keyColumns('"v"').map((column) => raw(column)));
          return { sql: `${table.keyExpression('v')} in (${keyed.getQuery()})`, params: [...keyed.getParams()] };
        })();
    // Parameters are placeholders: a "select" in the text is a subquery, not a value.
    if (sql.startsWith(prefix) && !/\bselect\b/i.test(condition.sql)) {
      this.ownRow.add(condition);
    }
    byKey ??= new Map();
    byKey.set(cacheKey, condition);
    this.conditions.set(set, byKey);
    return condition;
  }
}
