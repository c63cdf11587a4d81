import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { MikroORM } from '@mikro-orm/core';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { BullModule } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { formatFinding } from '../../lib/doctor/doctor-finding.js';
import { resolveOptions } from '../../lib/deletion.options.js';
import { DELETION_ENTITIES, DeletionDoctor, DeletionDoctorError, DeletionModule, definePolicy, type DeletionModuleOptions, type DoctorFinding } from '../../lib/index.js';
import { resolvePolicies } from '../../lib/registry/policy-resolver.js';
import { ARCHIVE_SCHEMA, Crate, DOCTOR_ENTITIES, Store } from '../fixtures/doctor.entities.js';
import { Author, LIBRARY_ENTITIES } from '../fixtures/library.entities.js';
import { Shop, VALIDATED_ENTITIES } from '../fixtures/validated.entities.js';
import { createDeletionTestApp, redisConnection, type DeletionTestApp } from '../support/deletion-test-app.js';
import { createTestDatabase, databaseUrl } from '../support/services.js';

/** What the doctor logged through Nest's Logger (other components' warnings left out). */
const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
const doctorWarnings = () => warn.mock.calls.map(([message]) => String(message)).filter((message) => message.startsWith('[DELETION_DOCTOR_'));
afterAll(() => warn.mockRestore());

/** One relation with each problem of DESIGN 2.2 and 6, plus a clean one (`stock`). */
const PROBLEMS: DeletionModuleOptions['policies'] = [
  definePolicy(Store, {
    sales: 'destroyAsync', // ON DELETE CASCADE
    manager: 'destroyAsync', // one-to-one, ON DELETE CASCADE
    archivedSales: 'deleteAllAsync', // ON DELETE CASCADE, in another schema
    coupons: 'destroyAsync', // nullable: ON DELETE SET NULL
    racks: 'destroyAsync', // NO ACTION, no tombstone
    receipts: 'destroy', // no index
    crates: 'deleteAllAsync', // Crate has policies of its own
    vouchers: 'nullifyThenPurge', // nullable in the entity; a test makes the column NOT NULL
    stock: 'destroyAsync', // no constraint, indexed: fine
  }),
  definePolicy(Crate, { labels: 'deleteAllAsync' }),
];

const only = (findings: DoctorFinding[], relation: string) => findings.filter((f) => f.relation === relation);

describe("a schema with one problem per relation, booted with doctor: 'warn'", () => {
  let app: DeletionTestApp;
  let findings: DoctorFinding[];
  let loggedAtBoot: string[];

  beforeAll(async () => {
    warn.mockClear();
    app = await createDeletionTestApp({ database: 'deletion_doctor_problems', entities: DOCTOR_ENTITIES, deletion: { policies: PROBLEMS, doctor: 'warn', worker: false } });
    loggedAtBoot = doctorWarnings();
    findings = await app.deletions.doctor();
  });
  afterAll(() => app?.close());

  it('destroyAsync over ON DELETE CASCADE', () => {
    expect(only(findings, 'sales')).toEqual([
      expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_CASCADE_FK', entity: 'Store', relation: 'sales', policy: 'destroyAsync', constraint: 'sale_store_id_foreign' }),
    ]);
    const [finding] = only(findings, 'sales');
    expect(finding!.message).toContain('Store.sales uses "destroyAsync", but the foreign key sale_store_id_foreign on sale.store_id is ON DELETE CASCADE');
    expect(finding!.fix).toContain('set createForeignKeyConstraint: false on Sale.store');
    expect(finding!.fix).toContain('ALTER TABLE sale DROP CONSTRAINT sale_store_id_foreign');
    expect(finding!.fix).toContain("definePolicy(Store, {...}, { tombstone: 'deletedAt' })");
  });

  it('the inverse side of a one-to-one, ON DELETE CASCADE', () => {
    expect(only(findings, 'manager')).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_CASCADE_FK', entity: 'Store', relation: 'manager', constraint: 'manager_store_id_foreign' })]);
    expect(only(findings, 'manager')[0]!.message).toContain('Store.manager uses "destroyAsync", but the foreign key manager_store_id_foreign on manager.store_id');
    expect(only(findings, 'manager')[0]!.fix).toContain('on Manager.store');
  });

  it(`deleteAllAsync over ON DELETE CASCADE in the ${ARCHIVE_SCHEMA} schema`, () => {
    expect(only(findings, 'archivedSales')).toEqual([
      expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_CASCADE_FK', relation: 'archivedSales', policy: 'deleteAllAsync', constraint: 'archived_sale_store_id_foreign' }),
    ]);
    expect(only(findings, 'archivedSales')[0]!.message).toContain(`on ${ARCHIVE_SCHEMA}.archived_sale.store_id is ON DELETE CASCADE`);
    expect(only(findings, 'archivedSales')[0]!.fix).toContain(`ALTER TABLE ${ARCHIVE_SCHEMA}.archived_sale DROP CONSTRAINT archived_sale_store_id_foreign`);
  });

  it("destroyAsync over a nullable relation: MikroORM 7's default ON DELETE SET NULL", () => {
    expect(only(findings, 'coupons')).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_SET_NULL_FK', entity: 'Store', relation: 'coupons', constraint: 'coupon_store_id_foreign' })]);
    expect(only(findings, 'coupons')[0]!.message).toContain('the foreign key coupon_store_id_foreign on coupon.store_id is ON DELETE SET NULL');
    expect(only(findings, 'coupons')[0]!.fix).toContain('set createForeignKeyConstraint: false on Coupon.store');
  });

  it('destroyAsync over the default NO ACTION key, without tombstone mode', () => {
    expect(only(findings, 'racks')).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_BLOCKING_FK', entity: 'Store', relation: 'racks', constraint: 'rack_store_id_foreign' })]);
    expect(only(findings, 'racks')[0]!.message).toContain('the foreign key rack_store_id_foreign on rack.store_id is ON DELETE NO ACTION');
    expect(only(findings, 'racks')[0]!.message).toContain('deleting a Store that still has racks fails with a foreign-key violation');
    expect(only(findings, 'racks')[0]!.fix).toContain("use tombstone mode: definePolicy(Store, {...}, { tombstone: 'deletedAt' })");
  });

  it('a foreign-key column without an index', () => {
    expect(only(findings, 'receipts')).toEqual([expect.objectContaining({ severity: 'warning', code: 'DELETION_DOCTOR_UNINDEXED_FK', entity: 'Store', relation: 'receipts', policy: 'destroy' })]);
    expect(only(findings, 'receipts')[0]).not.toHaveProperty('constraint');
    expect(only(findings, 'receipts')[0]!.message).toContain('Store.receipts finds its Receipt rows by receipt.store_id, but no index of receipt starts with that column');
    expect(only(findings, 'receipts')[0]!.fix).toBe('CREATE INDEX ON receipt (store_id), or declare { index: true } on Receipt.store.');
  });

  it('deleteAllAsync over children that have policies of their own', () => {
    expect(only(findings, 'crates')).toEqual([expect.objectContaining({ severity: 'warning', code: 'DELETION_DOCTOR_SKIPPED_POLICIES', entity: 'Store', relation: 'crates', policy: 'deleteAllAsync' })]);
    expect(only(findings, 'crates')[0]!.message).toContain('so what Crate declares for its own deletion (labels: "deleteAllAsync") is skipped');
    expect(only(findings, 'crates')[0]!.fix).toContain('use "destroyAsync" for Store.crates');
  });

  it('nothing on the relations that are set up right, and nothing else', () => {
    expect(only(findings, 'stock')).toEqual([]);
    expect(only(findings, 'vouchers')).toEqual([]);
    expect(only(findings, 'labels')).toEqual([]);
    expect(findings).toHaveLength(7);
  });

  it('logged every finding with Nest Logger.warn and booted', async () => {
    expect(loggedAtBoot).toEqual(findings.map(formatFinding));
    expect(await app.em().count(Store, {})).toBe(0);
  });

  it('DeletionDoctor is exported for tooling and reports the same', async () => {
    expect(await app.module.get(DeletionDoctor).inspect()).toEqual(findings);
  });

  // The resolver rejects nullify/nullifyThenPurge over a NOT NULL *entity* property at bootstrap
  // (DELETION_CONFIG_NOT_NULLABLE); the doctor catches a database column that disagrees with it.
  it('nullifyThenPurge over a column the database holds NOT NULL although the entity says nullable', async () => {
    await app.em().getConnection().execute('alter table voucher alter column store_id set not null');
    try {
      const vouchers = only(await app.deletions.doctor(), 'vouchers');

      expect(vouchers).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_NOT_NULL', entity: 'Store', relation: 'vouchers', policy: 'nullifyThenPurge' })]);
      expect(vouchers[0]).not.toHaveProperty('constraint'); // Voucher.store has no constraint
      expect(vouchers[0]!.message).toContain('Store.vouchers uses "nullifyThenPurge", which sets voucher.store_id to NULL, but the database holds store_id NOT NULL');
      expect(vouchers[0]!.fix).toMatch(/^ALTER TABLE voucher ALTER COLUMN store_id DROP NOT NULL/);
    } finally {
      await app.em().getConnection().execute('alter table voucher alter column store_id drop not null');
    }
  });
});

describe('the fixes the doctor gives make its findings go away', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_doctor_fixes', entities: DOCTOR_ENTITIES, deletion: { policies: PROBLEMS, doctor: 'off', worker: false } });
  });
  afterAll(() => app?.close());

  it.each([
    ['sales', 'DELETION_DOCTOR_CASCADE_FK', /ALTER TABLE sale DROP CONSTRAINT \w+/],
    ['receipts', 'DELETION_DOCTOR_UNINDEXED_FK', /CREATE INDEX ON receipt \(store_id\)/],
    ['vouchers', 'DELETION_DOCTOR_NOT_NULL', /ALTER TABLE voucher ALTER COLUMN store_id DROP NOT NULL/],
  ])('Store.%s (%s)', async (relation, code, statement) => {
    if (relation === 'vouchers') {
      await app.em().getConnection().execute('alter table voucher alter column store_id set not null');
    }
    const [finding] = only(await app.deletions.doctor(), relation);
    expect(finding?.code).toBe(code);
    const sql = statement.exec(finding!.fix)?.[0];
    expect(sql).toBeDefined();

    await app.em().getConnection().execute(sql!);

    expect(only(await app.deletions.doctor(), relation)).toEqual([]);
  });
});

describe('a clean schema', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_doctor_clean',
      entities: DOCTOR_ENTITIES,
      deletion: {
        worker: false,
        policies: [
          // Tombstone mode: racks keep their NO ACTION key; the children go before the Store row.
          definePolicy(Store, { stock: 'destroyAsync', racks: 'destroyAsync', coupons: 'nullifyThenPurge', crates: 'deleteAllAsync', sales: 'destroy', manager: 'deleteAll' }, { tombstone: 'deletedAt' }),
        ],
      },
    });
  });
  afterAll(() => app?.close());

  it("gives no finding, and boots in the default 'error' mode", async () => {
    expect(await app.deletions.doctor()).toEqual([]);
  });

  it('reports a child table that does not exist as a warning, without failing', async () => {
    await app.em().getConnection().execute('drop table stock');

    expect(await app.deletions.doctor()).toEqual([
      expect.objectContaining({ severity: 'warning', code: 'DELETION_DOCTOR_TABLE_MISSING', entity: 'Store', relation: 'stock', message: expect.stringContaining('the table stock of Stock does not exist') }),
    ]);
  });
});

describe("doctor: 'error' (the default)", () => {
  it('stops the boot, listing every error finding with its constraint and fix, and logs the warnings', async () => {
    warn.mockClear();
    const database = 'deletion_doctor_error';
    await createTestDatabase(database);
    const module = await Test.createTestingModule({
      imports: [
        MikroOrmModule.forRoot({ driver: PostgreSqlDriver, clientUrl: databaseUrl(database), entities: [...DOCTOR_ENTITIES, ...DELETION_ENTITIES], metadataProvider: ReflectMetadataProvider, allowGlobalContext: true }),
        BullModule.forRoot({ connection: redisConnection(), prefix: database }),
        DeletionModule.forRoot({ worker: false, policies: [definePolicy(Store, { sales: 'destroyAsync', racks: 'deleteAllAsync', receipts: 'destroy' })] }),
      ],
    }).compile();
    let error: unknown;
    try {
      await module.get(MikroORM).schema.refresh();
      await module.init();
    } catch (thrown) {
      error = thrown;
    } finally {
      await module.close();
    }

    expect(error).toBeInstanceOf(DeletionDoctorError);
    const doctorError = error as DeletionDoctorError;
    expect(doctorError.code).toBe('DELETION_DOCTOR_FAILED');
    expect(doctorError.findings.map((f) => [f.code, f.entity, f.relation, f.constraint])).toEqual([
      ['DELETION_DOCTOR_CASCADE_FK', 'Store', 'sales', 'sale_store_id_foreign'],
      ['DELETION_DOCTOR_BLOCKING_FK', 'Store', 'racks', 'rack_store_id_foreign'],
    ]);
    expect(doctorError.message).toMatch(/^The deletion doctor found that 2 deletion policies conflict with the database schema:\n/);
    for (const finding of doctorError.findings) {
      expect(doctorError.message).toContain(`  - ${formatFinding(finding)}`);
    }
    expect(doctorError.message).toContain("doctor: 'warn'");
    expect(doctorWarnings()).toEqual([expect.stringMatching(/^\[DELETION_DOCTOR_UNINDEXED_FK\] Store\.receipts finds its Receipt rows by receipt\.store_id.* Fix: CREATE INDEX ON receipt \(store_id\)/)]);
  });
});

describe("doctor: 'off'", () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    warn.mockClear();
    app = await createDeletionTestApp({ database: 'deletion_doctor_off', entities: DOCTOR_ENTITIES, deletion: { doctor: 'off', worker: false, policies: [definePolicy(Store, { sales: 'destroyAsync' })] } });
  });
  afterAll(() => app?.close());

  it('boots without looking, yet doctor() still reports on demand', async () => {
    expect(doctorWarnings()).toEqual([]);
    expect((await app.deletions.doctor()).map((f) => f.code)).toEqual(['DELETION_DOCTOR_CASCADE_FK']);
  });
});

describe('a database the doctor cannot reach at bootstrap', () => {
  let orm: MikroORM;

  beforeAll(() => {
    orm = new MikroORM({ driver: PostgreSqlDriver, clientUrl: 'postgresql://postgres@127.0.0.1:1/deletion_doctor_unreachable', entities: DOCTOR_ENTITIES, metadataProvider: ReflectMetadataProvider });
  });
  afterAll(() => orm?.close());

  const doctor = (mode: 'warn' | 'error') =>
    new DeletionDoctor(
      orm,
      resolvePolicies({ metadata: orm.getMetadata(), definitions: [definePolicy(Store, { sales: 'destroyAsync' })], defaultBatchSize: 10 }),
      resolveOptions({ doctor: mode }),
    );

  it("'warn' logs that it could not look, and lets the application start", async () => {
    warn.mockClear();

    await expect(doctor('warn').onApplicationBootstrap()).resolves.toBeUndefined();

    expect(warn.mock.calls.map(([message]) => String(message))).toEqual([expect.stringMatching(/^Could not compare the deletion policies with the database schema: .*ECONNREFUSED/)]);
  });

  it("'error' stops the boot with the connection error", async () => {
    await expect(doctor('error').onApplicationBootstrap()).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('deleteAll over children with lifecycle hooks', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_doctor_hooks', entities: LIBRARY_ENTITIES, deletion: { doctor: 'warn', policies: [definePolicy(Author, { books: 'deleteAll' })] } });
  });
  afterAll(() => app?.close());

  it('warns that the set-based delete skips the children’s delete hooks, naming them', async () => {
    const findings = (await app.deletions.doctor()).filter((f) => f.code === 'DELETION_DOCTOR_SKIPPED_POLICIES');
    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', entity: 'Author', relation: 'books', policy: 'deleteAll' })]);
    expect(findings[0]!.message).toContain('@BeforeDelete journalBeforeDelete()');
    expect(findings[0]!.message).toContain('@AfterDelete journalAfterDelete()');
  });
});

describe('set-based validators and their index', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_doctor_validators', entities: VALIDATED_ENTITIES, deletion: { doctor: 'warn', policies: [definePolicy(Shop, { ledgers: 'deleteAllAsync' })] } });
  });
  afterAll(() => app?.close());

  it('warns when no partial index on the foreign key serves the validator, giving the CREATE INDEX to add, and stops once it exists', async () => {
    const unserved = async () => (await app.deletions.doctor()).filter((f) => f.code === 'DELETION_DOCTOR_UNSERVED_VALIDATOR');
    const [finding] = await unserved();
    expect(finding).toMatchObject({ severity: 'warning', entity: 'Shop', relation: 'ledgers', policy: 'deleteAllAsync' });
    expect(finding!.fix).toBe('CREATE INDEX ON ledger (shop_id) WHERE "locked" = true.');
    await app.em().getConnection().execute(finding!.fix.replace(/\.$/, ''));
    expect(await unserved()).toEqual([]);
  });
});
