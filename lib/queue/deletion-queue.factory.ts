import type { MikroORM } from '@mikro-orm/core';
import type { BullRootModuleOptions } from '@nestjs/bullmq';
import { Queue, Worker, createPostgresBackend, withBackend, type Processor, type WorkerOptions } from 'bullmq';
import { DeletionConfigurationError } from '../errors/deletion-configuration.error.js';
import type { ResolvedDeletionOptions } from '../interfaces/deletion-module-options.interface.js';
import { DELETION_QUEUE } from './deletion-queue.constants.js';

const postgres = withBackend(createPostgresBackend);

/**
 * The module's queue. On Redis it uses the application's `BullModule.forRoot()` connection and
 * prefix (so `@nestjs/bullmq` runs its worker); on PostgreSQL it is built with BullMQ's PostgreSQL
 * backend, migrating its own schema at boot.
 */
export function createDeletionQueue(options: ResolvedDeletionOptions, shared: BullRootModuleOptions | undefined, orm: MikroORM): Queue {
  if (options.queue.backend === 'postgres') {
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
  return new postgres.Worker(DELETION_QUEUE, processor, { ...settings, connection: postgresConnection(options, orm), autorun: false }) as unknown as Worker;
}

function postgresConnection(options: ResolvedDeletionOptions, orm: MikroORM) {
  const connectionString = options.queue.postgres?.connection ?? orm.config.get('clientUrl') ?? clientUrlOf(orm);
  return { connectionString, schema: options.queue.postgres?.schema ?? 'bullmq', migrate: true };
}

/** MikroORM's connection as a URL, when it was configured by parts rather than `clientUrl`. */
function clientUrlOf(orm: MikroORM): string {
  const c = orm.config;
  const auth = c.get('user') ? `${encodeURIComponent(c.get('user')!)}${c.get('password') ? `:${encodeURIComponent(String(c.get('password')))}` : ''}@` : '';
  return `postgresql://${auth}${c.get('host') ?? '127.0.0.1'}:${c.get('port') ?? 5432}/${c.get('dbName')}`;
}
