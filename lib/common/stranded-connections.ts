import { AsyncLocalStorage } from 'node:async_hooks';
import type { EntityManager, MikroORM } from '@mikro-orm/core';

/** The parts of pg's pool and of a checked-out client that `StrandedConnections` relies on (public pg-pool API). */
interface PgPool {
  on(event: 'acquire', listener: (client: PooledClient) => void): unknown;
  on(event: 'release', listener: (error: unknown, client: PooledClient) => void): unknown;
}
interface PooledClient {
  release(error?: Error): void;
}
/** One transaction while it begins: the client the pool handed it, and whether it went back. */
interface Checkout {
  beginning: boolean;
  client?: PooledClient;
  released?: boolean;
}

/**
 * Runs the runner's transactions (`em.fork().transactional()`) and hands back the pooled
 * connection of one that failed together with its connection. MikroORM 7.2.1 pins Kysely 0.29.6
 * exactly, whose ControlledTransaction releases its connection only after a successful BEGIN and
 * COMMIT or ROLLBACK: when a batch's connection is dropped (failover, pgbouncer restart,
 * pg_terminate_backend) the ROLLBACK fails as well, MikroORM logs "Failed to roll back
 * transaction", and the pg client stays checked out for good; so does one whose BEGIN fails on a
 * connection dropped while idle. A few such drops exhaust the pool. (Kysely 0.29.7 releases in a
 * `finally`; with it, or a MikroORM that allows it, this finds nothing to do.)
 *
 * The pool reports each checkout ('acquire') in the async context of the transaction that is
 * beginning; when that transaction fails without having committed or rolled back, and its client
 * has not come back ('release'), the client is released as broken, so the pool discards it. A
 * transaction that had to queue for a client (the pool at its maximum) is handed one in another
 * context: it is not recognised, and its client can still leak. Costs no statement.
 */
export class StrandedConnections {
  private readonly checkouts = new AsyncLocalStorage<Checkout>();
  private readonly holders = new WeakMap<PooledClient, Checkout>();
  private watching?: Promise<boolean>;

  async transactional<T>(orm: MikroORM, work: (em: EntityManager) => Promise<T>): Promise<T> {
    if (!(await (this.watching ??= this.watch(orm)))) {
      return orm.em.fork().transactional(work);
    }
    const checkout: Checkout = { beginning: true };
    let trx: { isCommitted?: boolean; isRolledBack?: boolean } | undefined;
    try {
      return await this.checkouts.run(checkout, () =>
        orm.em.fork().transactional((em) => {
          checkout.beginning = false;
          trx = em.getTransactionContext();
          return work(em);
        }),
      );
    } catch (error) {
      const stranded = !trx || (!trx.isCommitted && !trx.isRolledBack);
      if (stranded && checkout.client && !checkout.released) {
        checkout.released = true;
        checkout.client.release(error instanceof Error ? error : new Error(String(error)));
      }
      throw error;
    }
  }

  /** Listens to the ORM's pg pool; false when the ORM exposes none (a Kysely instance of the application's own). */
  private async watch(orm: MikroORM): Promise<boolean> {
    const pool = (await orm.em.getConnection().getNativeClient().catch(() => undefined)) as PgPool | undefined;
    if (typeof pool?.on !== 'function') {
      return false;
    }
    pool.on('acquire', (client) => {
      const checkout = this.checkouts.getStore();
      if (checkout?.beginning && !checkout.client) {
        checkout.client = client;
        this.holders.set(client, checkout);
      }
    });
    pool.on('release', (_error, client) => {
      const checkout = this.holders.get(client);
      if (checkout) {
        this.holders.delete(client);
        // Back while still beginning: a failed BEGIN released by Kysely itself, or a query on a client of its own.
        if (checkout.beginning) {
          checkout.client = undefined;
        } else {
          checkout.released = true;
        }
      }
    });
    return true;
  }
}
