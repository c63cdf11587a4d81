import type { MikroORM } from '@mikro-orm/core';
import type { BullRootModuleOptions } from '@nestjs/bullmq';
import { Queue, Worker, createPostgresBackend, withBackend, type PostgresPoolConfig, type Processor, type WorkerOptions } from 'bullmq';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DELETION_QUEUE } from './deletion-queue.constants.js';
import type { PolicyRegistry } from '../registry/policy-registry.js';

const postgres = withBackend(createPostgresBackend);

/**
 * The module's queue. On Redis it uses the application's `BullModule.forRoot()` connection and
 * prefix (so `@nestjs/bullmq` runs its worker); on PostgreSQL it is built with BullMQ's PostgreSQL
 * backend, migrating its own schema at boot. The policy registry is built first (`_registry`): a
 * configuration error stops the boot before the queue opens a connection that nothing would close.
 */
export function createDeletionQueue(options: ResolvedDeletionOptions, shared: BullRootModuleOptions | undefined, orm: MikroORM, _registry: PolicyRegistry): Queue {
  if (options.queue.backend === 'postgres') {
    // Queue is invariant in its backend type and the queue's consumers take the Redis-typed default; they call only backend-neutral methods.
    return new postgres.Queue(DELETION_QUEUE, { connection: postgresConnection(options, orm) }) as unknown as Queue;
  }
  if (!shared?.connection) {
    throw DeletionConfigurationError.create(
      'DELETION_CONFIG_QUEUE_CONNECTION',
      { option: 'queue' },
      'the deletion queue has no Redis connection.',
      "import BullModule.forRoot({ connection }) from @nestjs/bullmq in your root module, or set queue: { backend: 'postgres' }.",
    );
  }
  return new Queue(DELETION_QUEUE, { connection: shared.connection, prefix: shared.prefix });
}

/** The PostgreSQL backend's worker; `@nestjs/bullmq` only starts Redis workers. */
export function createPostgresWorker(options: ResolvedDeletionOptions, orm: MikroORM, processor: Processor, settings: Omit<WorkerOptions, 'connection'>): Worker {
  // Worker is invariant in its backend type and CascadeProcessor holds the Redis-typed default; it calls only backend-neutral methods.
  return new postgres.Worker(DELETION_QUEUE, processor, { ...settings, connection: postgresConnection(options, orm), autorun: false }) as unknown as Worker;
}

/**
 * The PostgreSQL backend's pool config: the `queue.postgres.connection` given, or MikroORM's own
 * connection settings, passed as node-postgres options (never assembled into a URL by hand).
 */
export function postgresConnection(options: ResolvedDeletionOptions, orm: MikroORM): PostgresPoolConfig {
  const schema = options.queue.postgres?.schema ?? 'bullmq';
  const given = options.queue.postgres?.connection;
  const pool: PostgresPoolConfig = given === undefined ? poolConfigOf(orm) : typeof given === 'string' ? { connectionString: given } : { ...given };
  return { ...pool, schema, migrate: true };
}

/**
 * MikroORM's connection settings as a node-postgres pool config, as MikroORM builds its own pool:
 * `clientUrl` with `host`, `port`, `user`, `password` and `dbName` over it, then `driverOptions`
 * (`ssl`, …).
 */
function poolConfigOf(orm: MikroORM): PostgresPoolConfig {
  const connection = orm.em.getConnection().getConnectionOptions();
  const { onPoolCreated: _hook, ...driverOptions } = (orm.config.get('driverOptions') ?? {}) as Record<string, unknown>;
  return { ...connection, ...driverOptions } as PostgresPoolConfig;
}
