import type { EntityClass, EntityManager, EntitySchema, EventArgs } from '@mikro-orm/core';
import type { PgAdmin } from '../../support/pg-admin.js';
import { waitUntil } from '../../support/wait.js';

/**
 * Shared pieces of the direct-removal specs (issue 12, "one delete, one set of hooks"; DESIGN 7):
 * entity classes of their own per file, hook counters, and a cascade held in a child's hook.
 */

/** A row with a single integer key. */
export interface Row {
  id: number;
}

/** A fresh class named `name` (MikroORM keys metadata by class; the name shows up in errors and hooks). */
export const named = <T extends object = Row>(name: string) => ({ [name]: class {} })[name] as unknown as EntityClass<T>;

/** An integer key the test assigns itself. */
export const intId = { type: 'integer', primary: true, autoincrement: false } as const;

/** A nullable many-to-one without a database constraint (what async policies need, DESIGN 2.2), indexed. */
export const fk = (entity: () => EntityClass<object>) => ({ kind: 'm:1', entity, nullable: true, createForeignKeyConstraint: false, index: true }) as const;

/** `'deleted'` when `promise` resolves, its error when it rejects. */
export const settle = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'deleted',
    (error: unknown) => error,
  );

/** Removes `entity` and flushes. */
export const flushRemoving = (em: EntityManager, entity: object): Promise<void> => {
  em.remove(entity);
  return em.flush();
};

/** Backends of `database` left idle inside a transaction. */
export const idleInTransaction = async (admin: PgAdmin, database: string): Promise<number> =>
  (await admin.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where datname = $1 and state like 'idle in transaction%'`, [database]))[0]!.n;

/**
 * Counts `beforeDelete` / `afterDelete` calls per `Name#id`, and can stop a cascade in the
 * `beforeDelete` hook of one row (its page is locked by then) until the test lets it go.
 */
export class HookCalls {
  private readonly calls = new Map<string, number>();
  private trigger: { key: string; reached: () => void; release: Promise<void> } | undefined;

  reset(): void {
    this.calls.clear();
    this.trigger = undefined;
  }

  count(name: string, id: number | string, hook: 'beforeDelete' | 'afterDelete'): number {
    return this.calls.get(`${name}#${id}:${hook}`) ?? 0;
  }

  /** `[beforeDelete, afterDelete]` calls of `name#id`. */
  both(name: string, id: number | string): [number, number] {
    return [this.count(name, id, 'beforeDelete'), this.count(name, id, 'afterDelete')];
  }

  /** Records the delete hooks of `schema`'s rows as `name#idOf(row)`. */
  record<T extends object>(schema: EntitySchema<T>, name: string, idOf: (row: T) => string = (row) => String((row as Record<string, unknown>).id)): EntitySchema<T> {
    for (const hook of ['beforeDelete', 'afterDelete'] as const) {
      schema.addHook(hook, async (args: EventArgs<T>) => {
        const key = `${name}#${idOf(args.entity)}`;
        this.calls.set(`${key}:${hook}`, (this.calls.get(`${key}:${hook}`) ?? 0) + 1);
        if (hook === 'beforeDelete' && this.trigger?.key === key) {
          const { reached, release } = this.trigger;
          this.trigger = undefined;
          reached();
          await release;
        }
      });
    }
    return schema;
  }

  /**
   * Runs `cascade` and, once it stops in the `beforeDelete` hook of `key`, runs `remove` (from the
   * test's own async context, not the hook's) and lets the cascade go on when that removal waits on
   * a lock. Returns the removal's outcome (`'deleted'` or its error).
   */
  async removeWhileHeld(admin: PgAdmin, key: string, remove: () => Promise<unknown>, cascade: () => Promise<unknown>): Promise<unknown> {
    let reached!: () => void;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    this.trigger = { key, reached, release: new Promise<void>((resolve) => (release = resolve)) };
    const running = cascade();
    await held;
    const waitersBefore = (await admin.lockWaiters()).length;
    const outcome = settle(remove());
    try {
      await waitUntil(async () => (await admin.lockWaiters()).length > waitersBefore, 10_000, 'the direct removal to wait on the cascade');
    } finally {
      release();
    }
    await running;
    return outcome;
  }
}
