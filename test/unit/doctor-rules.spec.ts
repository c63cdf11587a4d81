import { MikroORM } from '@mikro-orm/core';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { resolveOptions } from '../../lib/deletion.options.js';
import { diagnose, type OwnDeletionLogic } from '../../lib/doctor/doctor.rules.js';
import type { ForeignKeyFacts, IndexFacts, SchemaFacts, TableFacts } from '../../lib/doctor/schema-inspector.js';
import { DeletionConfigurationError, definePolicy, type DoctorFinding, type PolicyDefinition } from '../../lib/index.js';
import { resolvePolicies } from '../../lib/registry/policy-resolver.js';
import type { PolicyRegistry } from '../../lib/registry/policy-registry.js';
import { ARCHIVE_SCHEMA, Crate, DOCTOR_ENTITIES, Store } from '../fixtures/doctor.entities.js';
import { Post, TAGGING_ENTITIES } from '../fixtures/tagging.entities.js';

/** Real MikroORM metadata, discovered without a database: the rules only read it. */
let orm: MikroORM;

beforeAll(() => {
  orm = new MikroORM({
    driver: PostgreSqlDriver,
    clientUrl: 'postgresql://unused@127.0.0.1:1/never_connected',
    entities: [...DOCTOR_ENTITIES, ...TAGGING_ENTITIES],
    metadataProvider: ReflectMetadataProvider,
  });
});
afterAll(() => orm?.close());

function registry(...definitions: PolicyDefinition<never>[]): PolicyRegistry {
  return resolvePolicies({ metadata: orm.getMetadata(), definitions: definitions as PolicyDefinition[], defaultBatchSize: 100 });
}

const indexed: IndexFacts = { name: 'child_store_id_index', columns: ['store_id'], partial: false, valid: true };

/** A child table with a foreign-key column (`store_id` unless said otherwise), indexed unless said otherwise. */
function table(name: string, facts: { foreignKeys?: ForeignKeyFacts[]; indexes?: IndexFacts[]; notNull?: boolean; schema?: string; column?: string } = {}): TableFacts {
  const column = facts.column ?? 'store_id';
  return {
    schema: facts.schema ?? 'public',
    table: name,
    columns: [
      { name: 'id', notNull: true },
      { name: column, notNull: facts.notNull ?? true },
    ],
    foreignKeys: facts.foreignKeys ?? [],
    indexes: facts.indexes ?? [{ ...indexed, columns: [column] }],
  };
}

function fk(name: string, onDelete: ForeignKeyFacts['onDelete'], columns = ['store_id']): ForeignKeyFacts {
  return { name, columns, onDelete, referencedTable: 'store' };
}

/** The schema facts for one child entity, keyed by class name as the inspector returns them. */
function schema(entries: Record<string, TableFacts | undefined>): SchemaFacts {
  return { currentSchema: 'public', tables: new Map(Object.entries(entries)) };
}

const codes = (findings: DoctorFinding[]) => findings.map((f) => f.code);

describe('async policies over a foreign key that acts on the parent delete (DESIGN 2.2)', () => {
  it('destroyAsync over ON DELETE CASCADE: the policy would do nothing', () => {
    const findings = diagnose(registry(definePolicy(Store, { sales: 'destroyAsync' })), schema({ Sale: table('sale', { foreignKeys: [fk('sale_store_id_foreign', 'cascade')] }) }));

    expect(findings).toEqual([
      expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_CASCADE_FK', entity: 'Store', relation: 'sales', policy: 'destroyAsync', constraint: 'sale_store_id_foreign' }),
    ]);
    const [finding] = findings;
    expect(finding!.message).toBe(
      'Store.sales uses "destroyAsync", but the foreign key sale_store_id_foreign on sale.store_id is ON DELETE CASCADE: PostgreSQL deletes the Sale rows ' +
        'together with the Store, in the request and without their hooks or their own policies, so "destroyAsync" finds nothing left to destroy.',
    );
    expect(finding!.fix).toContain('set createForeignKeyConstraint: false on Sale.store, keep sale.store_id indexed and drop the constraint (ALTER TABLE sale DROP CONSTRAINT sale_store_id_foreign)');
    expect(finding!.fix).toContain("definePolicy(Store, {...}, { tombstone: 'deletedAt' })");
  });

  it('deleteAllAsync over ON DELETE CASCADE: the request would pay for the whole cascade', () => {
    const [finding] = diagnose(registry(definePolicy(Store, { sales: 'deleteAllAsync' })), schema({ Sale: table('sale', { foreignKeys: [fk('sale_store_id_foreign', 'cascade')] }) }));

    expect(finding).toMatchObject({ code: 'DELETION_DOCTOR_CASCADE_FK', policy: 'deleteAllAsync', constraint: 'sale_store_id_foreign' });
    expect(finding!.message).toContain("inside the request's transaction, so the request pays for the whole cascade");
  });

  it('ON DELETE SET NULL (MikroORM 7 default for nullable relations): orphans instead of deletions', () => {
    const findings = diagnose(registry(definePolicy(Store, { coupons: 'destroyAsync' })), schema({ Coupon: table('coupon', { notNull: false, foreignKeys: [fk('coupon_store_id_foreign', 'set null')] }) }));

    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_SET_NULL_FK', entity: 'Store', relation: 'coupons', constraint: 'coupon_store_id_foreign' })]);
    expect(findings[0]!.message).toContain('is ON DELETE SET NULL: when a Store is deleted PostgreSQL sets coupon.store_id to NULL');
    expect(findings[0]!.message).toContain('the Coupon rows stay behind as orphans');
    expect(findings[0]!.fix).toContain('set createForeignKeyConstraint: false on Coupon.store');
  });

  it('ON DELETE SET DEFAULT: re-parented instead of deleted', () => {
    const [finding] = diagnose(registry(definePolicy(Store, { coupons: 'deleteAllAsync' })), schema({ Coupon: table('coupon', { notNull: false, foreignKeys: [fk('coupon_store_fk', 'set default')] }) }));

    expect(finding).toMatchObject({ severity: 'error', code: 'DELETION_DOCTOR_SET_DEFAULT_FK', constraint: 'coupon_store_fk' });
    expect(finding!.message).toContain('ON DELETE SET DEFAULT');
  });

  it.each(['no action', 'restrict'] as const)('ON DELETE %s without tombstone mode: the parent delete would fail', (rule) => {
    const [finding, ...others] = diagnose(registry(definePolicy(Store, { racks: 'destroyAsync' })), schema({ Rack: table('rack', { foreignKeys: [fk('rack_store_id_foreign', rule)] }) }));

    expect(others).toEqual([]);
    expect(finding).toMatchObject({ severity: 'error', code: 'DELETION_DOCTOR_BLOCKING_FK', entity: 'Store', relation: 'racks', constraint: 'rack_store_id_foreign' });
    expect(finding!.message).toContain(`is ON DELETE ${rule.toUpperCase()}: the Rack rows are deleted after the Store, in the queue, so deleting a Store that still has racks fails`);
    expect(finding!.fix).toMatch(/^keep the constraint and use tombstone mode: definePolicy\(Store, \{\.\.\.\}, \{ tombstone: 'deletedAt' \}\)/);
    expect(finding!.fix).toContain('or set createForeignKeyConstraint: false on Rack.store');
  });

  it.each(['no action', 'restrict', 'cascade', 'set null'] as const)('tombstone mode makes ON DELETE %s harmless: children go before the parent row', (rule) => {
    const findings = diagnose(
      registry(definePolicy(Store, { racks: 'destroyAsync', sales: 'deleteAllAsync' }, { tombstone: 'deletedAt' })),
      schema({ Rack: table('rack', { foreignKeys: [fk('rack_fk', rule)] }), Sale: table('sale', { foreignKeys: [fk('sale_fk', rule)] }) }),
    );

    expect(findings).toEqual([]);
  });

  it.each(['destroy', 'deleteAll', 'restrict', 'nullifyThenPurge'] as const)('"%s" runs before the parent delete: the foreign key rule does not matter', (policy) => {
    const rules = ['cascade', 'set null', 'no action'] as const;
    for (const rule of rules) {
      const findings = diagnose(registry(definePolicy(Store, { coupons: policy })), schema({ Coupon: table('coupon', { notNull: false, foreignKeys: [fk('coupon_fk', rule)] }) }));
      expect(findings).toEqual([]);
    }
  });

  it('the inverse side of a one-to-one follows the same rules', () => {
    const [finding] = diagnose(registry(definePolicy(Store, { manager: 'destroyAsync' })), schema({ Manager: table('manager', { foreignKeys: [fk('manager_store_id_foreign', 'cascade')] }) }));

    expect(finding).toMatchObject({ code: 'DELETION_DOCTOR_CASCADE_FK', entity: 'Store', relation: 'manager', constraint: 'manager_store_id_foreign' });
    expect(finding!.fix).toContain('on Manager.store');
  });

  it('reports every constraint on the column, and ignores constraints on other columns', () => {
    const child = table('sale', { foreignKeys: [fk('sale_a', 'cascade'), fk('sale_b', 'no action'), fk('sale_other', 'cascade', ['id'])] });
    const findings = diagnose(registry(definePolicy(Store, { sales: 'destroyAsync' })), schema({ Sale: child }));

    expect(findings.map((f) => [f.code, f.constraint])).toEqual([
      ['DELETION_DOCTOR_CASCADE_FK', 'sale_a'],
      ['DELETION_DOCTOR_BLOCKING_FK', 'sale_b'],
    ]);
  });

  it('names a table outside the current schema with its schema', () => {
    const [finding] = diagnose(
      registry(definePolicy(Store, { archivedSales: 'destroyAsync' })),
      schema({ ArchivedSale: table('archived_sale', { schema: ARCHIVE_SCHEMA, foreignKeys: [fk('archived_sale_store_id_foreign', 'cascade')] }) }),
    );

    expect(finding!.message).toContain(`on ${ARCHIVE_SCHEMA}.archived_sale.store_id is ON DELETE CASCADE`);
    expect(finding!.fix).toContain(`ALTER TABLE ${ARCHIVE_SCHEMA}.archived_sale DROP CONSTRAINT archived_sale_store_id_foreign`);
  });
});

describe('nullifying policies over a NOT NULL column', () => {
  it.each(['nullify', 'nullifyThenPurge'] as const)('"%s" where the database holds the column NOT NULL although the entity says nullable', (policy) => {
    const findings = diagnose(registry(definePolicy(Store, { vouchers: policy })), schema({ Voucher: table('voucher', { notNull: true }) }));

    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'DELETION_DOCTOR_NOT_NULL', entity: 'Store', relation: 'vouchers', policy })]);
    expect(findings[0]).not.toHaveProperty('constraint');
    expect(findings[0]!.message).toContain(`Store.vouchers uses "${policy}", which sets voucher.store_id to NULL, but the database holds store_id NOT NULL (Voucher.store is nullable in the entity`);
    expect(findings[0]!.fix).toMatch(/^ALTER TABLE voucher ALTER COLUMN store_id DROP NOT NULL/);
  });

  it('names the foreign key when there is one', () => {
    const [finding] = diagnose(registry(definePolicy(Store, { coupons: 'nullify' })), schema({ Coupon: table('coupon', { notNull: true, foreignKeys: [fk('coupon_store_id_foreign', 'set null')] }) }));

    expect(finding).toMatchObject({ code: 'DELETION_DOCTOR_NOT_NULL', constraint: 'coupon_store_id_foreign' });
  });

  it('a nullable column is fine', () => {
    expect(diagnose(registry(definePolicy(Store, { vouchers: 'nullifyThenPurge' })), schema({ Voucher: table('voucher', { notNull: false }) }))).toEqual([]);
  });

  it('NOT NULL in the entity itself is rejected earlier, by the resolver', () => {
    const error = (() => {
      try {
        registry(definePolicy(Store, { racks: 'nullifyThenPurge' }));
      } catch (thrown) {
        return thrown;
      }
      return undefined;
    })();

    expect(error).toBeInstanceOf(DeletionConfigurationError);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_NOT_NULLABLE', entity: 'Store', relation: 'racks' });
  });
});

describe('foreign-key columns without an index', () => {
  const receipts = () => registry(definePolicy(Store, { receipts: 'destroyAsync' }));

  it('a column no index starts with: every deletion scans the child table', () => {
    const findings = diagnose(receipts(), schema({ Receipt: table('receipt', { indexes: [] }) }));

    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'DELETION_DOCTOR_UNINDEXED_FK', entity: 'Store', relation: 'receipts', policy: 'destroyAsync' })]);
    expect(findings[0]).not.toHaveProperty('constraint');
    expect(findings[0]!.message).toBe('Store.receipts finds its Receipt rows by receipt.store_id, but no index of receipt starts with that column, so each Store deletion scans the whole receipt table.');
    expect(findings[0]!.fix).toBe('CREATE INDEX ON receipt (store_id), or declare { index: true } on Receipt.store.');
  });

  it.each([
    ['a partial index', { name: 'p', columns: ['store_id'], partial: true, valid: true }],
    ['an invalid index', { name: 'i', columns: ['store_id'], partial: false, valid: false }],
    ['an index where the column comes second', { name: 's', columns: ['id', 'store_id'], partial: false, valid: true }],
    ['an expression index', { name: 'e', columns: [''], partial: false, valid: true }],
  ])('%s does not count', (_what, index) => {
    expect(codes(diagnose(receipts(), schema({ Receipt: table('receipt', { indexes: [index] }) })))).toEqual(['DELETION_DOCTOR_UNINDEXED_FK']);
  });

  it('an index that starts with the column counts, whatever follows', () => {
    const index = { name: 'c', columns: ['store_id', 'id'], partial: false, valid: true };
    expect(diagnose(receipts(), schema({ Receipt: table('receipt', { indexes: [index] }) }))).toEqual([]);
  });

  it('applies to synchronous policies too, and names the unindexed constraint', () => {
    const [finding] = diagnose(registry(definePolicy(Store, { racks: 'restrict' })), schema({ Rack: table('rack', { indexes: [], foreignKeys: [fk('rack_store_id_foreign', 'no action')] }) }));

    expect(finding).toMatchObject({ code: 'DELETION_DOCTOR_UNINDEXED_FK', policy: 'restrict', constraint: 'rack_store_id_foreign' });
    expect(finding!.message).toContain('foreign key such as rack_store_id_foreign');
  });

  it('quotes identifiers that need it, and qualifies tables off the current schema', () => {
    const [reserved] = diagnose(receipts(), schema({ Receipt: table('order', { indexes: [] }) }));
    const [elsewhere] = diagnose(receipts(), schema({ Receipt: table('Receipts', { indexes: [], schema: 'billing' }) }));

    expect(reserved!.fix).toMatch(/^CREATE INDEX ON "order" \(store_id\)/);
    expect(elsewhere!.fix).toMatch(/^CREATE INDEX ON billing\."Receipts" \(store_id\)/);
  });
});

describe('set-based policies over children with policies of their own', () => {
  it.each(['deleteAll', 'deleteAllAsync'] as const)('"%s" skips the child\'s own policies', (policy) => {
    const findings = diagnose(registry(definePolicy(Store, { crates: policy }), definePolicy(Crate, { labels: 'deleteAllAsync' })), schema({ Crate: table('crate'), CrateLabel: table('crate_label', { column: 'crate_id' }) }));

    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'DELETION_DOCTOR_SKIPPED_POLICIES', entity: 'Store', relation: 'crates', policy })]);
    expect(findings[0]!.message).toContain(`Store.crates uses "${policy}", which deletes Crate rows with set-based statements, so what Crate declares for its own deletion (labels: "deleteAllAsync") is skipped`);
    expect(findings[0]!.fix).toContain(`use "${policy === 'deleteAll' ? 'destroy' : 'destroyAsync'}" for Store.crates`);
  });

  it('"destroyAsync" runs the child\'s policies: nothing to report', () => {
    expect(diagnose(registry(definePolicy(Store, { crates: 'destroyAsync' }), definePolicy(Crate, { labels: 'deleteAllAsync' })), schema({ Crate: table('crate'), CrateLabel: table('crate_label', { column: 'crate_id' }) }))).toEqual([]);
  });

  it('a child without policies of its own is fine', () => {
    expect(diagnose(registry(definePolicy(Store, { crates: 'deleteAllAsync' })), schema({ Crate: table('crate') }))).toEqual([]);
  });

  it('takes the validators the seam reports into account', () => {
    const validators: OwnDeletionLogic = (meta) => (meta.className === 'Crate' ? ['@ValidateBeforeDestroy sealed()'] : []);
    const [finding] = diagnose(registry(definePolicy(Store, { crates: 'deleteAll' })), schema({ Crate: table('crate') }), validators);

    expect(finding).toMatchObject({ code: 'DELETION_DOCTOR_SKIPPED_POLICIES', relation: 'crates' });
    expect(finding!.message).toContain('(@ValidateBeforeDestroy sealed())');
  });
});

describe('what cannot be checked', () => {
  it('a missing child table is a warning, not a crash; set-based findings still come', () => {
    const findings = diagnose(registry(definePolicy(Store, { crates: 'deleteAllAsync', sales: 'destroyAsync' }), definePolicy(Crate, { labels: 'deleteAllAsync' })), schema({ CrateLabel: table('crate_label', { column: 'crate_id' }) }));

    expect(findings.map((f) => [f.severity, f.code, f.relation])).toEqual([
      ['warning', 'DELETION_DOCTOR_SKIPPED_POLICIES', 'crates'],
      ['warning', 'DELETION_DOCTOR_TABLE_MISSING', 'crates'],
      ['warning', 'DELETION_DOCTOR_TABLE_MISSING', 'sales'],
    ]);
    expect(findings[2]!.message).toBe('Store.sales: the table sale of Sale does not exist, so the doctor could not check its foreign key.');
  });

  it('a missing foreign-key column is a warning', () => {
    const child: TableFacts = { ...table('sale'), columns: [{ name: 'id', notNull: true }] };
    const [finding] = diagnose(registry(definePolicy(Store, { sales: 'destroyAsync' })), schema({ Sale: child }));

    expect(finding).toMatchObject({ severity: 'warning', code: 'DELETION_DOCTOR_COLUMN_MISSING', relation: 'sales' });
    expect(finding!.message).toContain('sale has no column store_id for Sale.store');
  });

  it('many-to-many relations (restrict only) are left out', () => {
    expect(diagnose(registry(definePolicy(Post, { tags: 'restrict' })), schema({}))).toEqual([]);
  });

  it('a clean setup gives no finding', () => {
    const findings = diagnose(
      registry(definePolicy(Store, { stock: 'destroyAsync', crates: 'deleteAllAsync', coupons: 'nullifyThenPurge', racks: 'destroy' })),
      schema({
        Stock: table('stock'),
        Crate: table('crate'),
        Coupon: table('coupon', { notNull: false, foreignKeys: [fk('coupon_store_id_foreign', 'set null')] }),
        Rack: table('rack', { foreignKeys: [fk('rack_store_id_foreign', 'no action')] }),
      }),
    );

    expect(findings).toEqual([]);
  });
});

describe('the doctor option', () => {
  it("defaults to 'error' and accepts every mode", () => {
    expect(resolveOptions({}).doctor).toBe('error');
    expect(['error', 'warn', 'off'].map((doctor) => resolveOptions({ doctor: doctor as 'warn' }).doctor)).toEqual(['error', 'warn', 'off']);
  });

  it('rejects an unknown mode, naming the option and the allowed values', () => {
    expect(() => resolveOptions({ doctor: 'loud' as never })).toThrow(DeletionConfigurationError);
    expect(() => resolveOptions({ doctor: 'loud' as never })).toThrow(`doctor: doctor "loud" is not a doctor mode. Fix: pass one of 'error', 'warn', 'off' (default 'error').`);
  });
});

describe('doctor messages', () => {
  it('use the article a name takes', async () => {
    const { article } = await import('../../lib/doctor/doctor.messages.js');
    const names = ['Organization', 'Author', 'Book', 'Invoice', 'Unit', 'User', 'Umbrella', 'EuropeanOffice', 'OneTimeCode', 'Order'];
    expect(names.map(article)).toEqual([
      'an Organization',
      'an Author',
      'a Book',
      'an Invoice',
      'a Unit',
      'a User',
      'an Umbrella',
      'a EuropeanOffice',
      'a OneTimeCode',
      'an Order',
    ]);
  });
});
