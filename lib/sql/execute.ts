import type { EntityManager, Transaction } from '@mikro-orm/core';

/**
 * Runs a statement the library wrote, on `em`'s transaction, and turns a database error into
 * MikroORM's own exception class (a foreign-key violation is a `ForeignKeyConstraintViolationException`,
 * as it would be from `em.nativeDelete()`), so callers see one error vocabulary.
 */
export async function execute<T>(em: EntityManager, sql: string, params: readonly unknown[], method: 'all' | 'run', ctx?: Transaction): Promise<T> {
  try {
    return await em.getConnection().execute<T>(sql, [...params], method, ctx ?? em.getTransactionContext());
  } catch (error) {
    throw error instanceof Error ? em.getDriver().convertException(error) : error;
  }
}

/**
 * The rows a query returns. `ctx`: a transaction `em` does not carry yet (one MikroORM has just
 * begun for a flush, before it hands it to the entity manager).
 */
export function query<T = Record<string, unknown>>(em: EntityManager, sql: string, params: readonly unknown[], ctx?: Transaction): Promise<T[]> {
  return execute<T[]>(em, sql, params, 'all', ctx);
}

/** The number of rows a statement changed. */
export async function run(em: EntityManager, sql: string, params: readonly unknown[]): Promise<number> {
  return (await execute<{ affectedRows: number }>(em, sql, params, 'run')).affectedRows;
}

/** The value of a `select count(*) as n …`. */
export async function count(em: EntityManager, sql: string, params: readonly unknown[]): Promise<number> {
  const rows = await query<{ n: string | number }>(em, sql, params);
  return Number(rows[0]?.n ?? 0);
}
