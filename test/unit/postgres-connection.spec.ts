import { afterEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, MikroORM, type Options } from '@mikro-orm/core';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { resolveOptions } from '../../lib/deletion.options.js';
import { postgresConnection } from '../../lib/queue/deletion-queue.factory.js';

class Thing {
  id!: number;
}
const THING = new EntitySchema<Thing>({ class: Thing, properties: { id: { type: 'integer', primary: true } } });

let orm: MikroORM | undefined;
afterEach(async () => {
  await orm?.close();
  orm = undefined;
});

async function ormWith(options: Partial<Options>): Promise<MikroORM> {
  orm = await MikroORM.init({ driver: PostgreSqlDriver, entities: [THING], connect: false, ...options } as Options);
  return orm;
}

/** Issue 13: the PostgreSQL queue backend takes its connection from MikroORM's settings or a pool config, never a URL built by hand. */
describe('the PostgreSQL queue backend connection', () => {
  it('takes MikroORM settings by parts as pool options, a password with URL-unsafe characters untouched, and its ssl', async () => {
    const config = postgresConnection(
      resolveOptions({ queue: { backend: 'postgres' } }),
      await ormWith({ host: 'db.internal', port: 6543, user: 'app', password: 'p@ss:w/rd%', dbName: 'shop', driverOptions: { ssl: { rejectUnauthorized: false } } }),
    );
    expect(config).toEqual({ host: 'db.internal', port: 6543, user: 'app', password: 'p@ss:w/rd%', database: 'shop', ssl: { rejectUnauthorized: false }, schema: 'bullmq', migrate: true });
  });

  it("takes MikroORM's clientUrl as MikroORM reads it for its own pool", async () => {
    const config = postgresConnection(resolveOptions({ queue: { backend: 'postgres' } }), await ormWith({ clientUrl: 'postgresql://app@db:5432/shop' }));
    expect(config).toEqual({ host: 'db', port: 5432, user: 'app', password: '', database: 'shop', schema: 'bullmq', migrate: true });
  });

  it('takes a pool config of its own, with a password function, over MikroORM settings', async () => {
    // node-postgres accepts a function for the password; BullMQ's type only says string.
    const password = (async () => 'rotated') as unknown as string;
    const config = postgresConnection(
      resolveOptions({ queue: { backend: 'postgres', postgres: { connection: { host: 'queue-db', password, ssl: true }, schema: 'jobs' } } }),
      await ormWith({ clientUrl: 'postgresql://app@db:5432/shop' }),
    );
    expect(config).toEqual({ host: 'queue-db', password, ssl: true, schema: 'jobs', migrate: true });
  });
});
