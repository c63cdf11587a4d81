import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass } from '@mikro-orm/core';
import { DeletionTargetNotFoundError, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { PgAdmin } from '../../support/pg-admin.js';
import { waitForState } from '../../support/wait.js';
import { HookCalls, fk, flushRemoving, intId, named, settle, type Row } from './direct-removal-support.js';

/**
 * Direct removals on the key and inheritance shapes of DESIGN 7:
 *
 * - a composite key with the foreign key inside it: such a child can only be under `deleteAll`,
 *   `nullify` or `restrict`, whose rows are not locked: MikroORM's own behaviour applies, a loaded
 *   row and a reference are removed by direct flushes (must keep working);
 * - single-table inheritance with JS subclasses, the relation typed to a subclass (`Kennel.dogs`,
 *   `destroyAsync`): a row of the family removed through a base-class reference while the batch
 *   holds it is deleted once with one set of hooks (issue 12, "one delete, one set of hooks"), and
 *   a row already gone is "not found" with no hook run.
 */
const DATABASE = 'deletion_direct_shapes';

interface Line {
  ledger: Row | number;
  lineNo: number;
}

const Ledger = named('DsLedger');
const LineClass = named<Line>('DsLine'); // composite key (ledger, lineNo), deleteAll child of Ledger
const Kennel = named('DsKennel');
class DsAnimal {
  id!: number;
}
class DsDog extends DsAnimal {} // destroyAsync child of Kennel
class DsCat extends DsAnimal {} // no relation names it; same table as DsDog
const Animal = DsAnimal as EntityClass<Row>;
const Dog = DsDog as EntityClass<Row>;
const Cat = DsCat as EntityClass<Row>;

const hooks = new HookCalls();
const lineId = (line: Line) => `${typeof line.ledger === 'object' ? line.ledger.id : line.ledger}-${line.lineNo}`;

let app: DeletionTestApp;
let admin: PgAdmin;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({ class: Ledger as never, tableName: 'ds_ledger', properties: { id: intId, lines: { kind: '1:m', entity: () => LineClass, mappedBy: 'ledger' } } as never }),
      hooks.record(
        new EntitySchema<Line>({
          class: LineClass as never,
          tableName: 'ds_line',
          properties: {
            ledger: { kind: 'm:1', entity: () => Ledger, primary: true, createForeignKeyConstraint: false },
            lineNo: { type: 'integer', primary: true, autoincrement: false },
          } as never,
        }),
        'Line',
        lineId,
      ),
      new EntitySchema<Row>({ class: Kennel as never, tableName: 'ds_kennel', properties: { id: intId, dogs: { kind: '1:m', entity: () => Dog, mappedBy: 'kennel' } } as never }),
      hooks.record(
        new EntitySchema<Row>({
          class: Animal as never,
          tableName: 'ds_animal',
          discriminatorColumn: 'kind',
          discriminatorMap: { dog: 'DsDog', cat: 'DsCat' } as never,
          properties: { id: intId, kind: { type: 'string' }, kennel: fk(() => Kennel) } as never,
        }),
        'Animal',
      ),
      new EntitySchema<Row>({ class: Dog as never, extends: Animal as never, discriminatorValue: 'dog', properties: {} as never }),
      new EntitySchema<Row>({ class: Cat as never, extends: Animal as never, discriminatorValue: 'cat', properties: {} as never }),
    ],
    deletion: {
      doctor: 'warn',
      batchSize: 10,
      policies: [definePolicy(Ledger, { lines: 'deleteAll' } as never), definePolicy(Kennel, { dogs: { policy: 'destroyAsync', batchSize: 10 } } as never)],
    },
  });
  admin = await PgAdmin.connect(DATABASE);
});

afterAll(async () => {
  await admin?.close();
  await app?.close();
});

beforeEach(async () => {
  hooks.reset();
  for (const table of ['ds_line', 'ds_ledger', 'ds_animal', 'ds_kennel']) {
    await sql(`delete from ${table}`);
  }
  await sql(`insert into ds_ledger (id) values (1), (2)`);
  await sql(`insert into ds_line (ledger_id, line_no) values (1, 1), (1, 2), (2, 1)`);
  await sql(`insert into ds_kennel (id) values (1)`);
  await sql(`insert into ds_animal (id, kind, kennel_id) values (1, 'dog', 1), (2, 'dog', 1), (3, 'dog', 1), (4, 'cat', 1)`);
});

describe('a composite key with the foreign key inside it (deleteAll child)', () => {
  it('a loaded line and a reference are removed by direct flushes, hooks once', async () => {
    const em = app.em();
    await flushRemoving(em, await em.findOneOrFail(LineClass, { ledger: 1, lineNo: 2 } as never));
    const other = app.em();
    await flushRemoving(other, other.getReference(LineClass, [2, 1] as never));
    expect(await sql('select ledger_id, line_no from ds_line order by 1, 2')).toEqual([{ ledger_id: 1, line_no: 1 }]);
    expect(hooks.both('Line', '1-2')).toEqual([1, 1]);
    expect(hooks.both('Line', '2-1')).toEqual([1, 1]);
  });
});

describe('single-table inheritance: a Dog (Kennel.dogs destroyAsync) removed through an Animal reference', () => {
  it('while the batch holds it: deleted once, hooks once, the direct removal is "not found"', async () => {
    const receipt = await app.deletions.destroy(Kennel, 1 as never);
    const outcome = await hooks.removeWhileHeld(
      admin,
      'Animal#1',
      async () => {
        const em = app.em();
        await flushRemoving(em, em.getReference(Animal, 2));
      },
      () => waitForState(app.deletions, receipt.requestId!),
    );
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');
    expect(outcome).toBeInstanceOf(DeletionTargetNotFoundError);
    for (const id of [1, 2, 3]) {
      expect(hooks.both('Animal', id)).toEqual([1, 1]);
    }
    expect(await sql('select id from ds_animal order by id')).toEqual([{ id: 4 }]);
  });

  it('a row already gone: "not found", no hook run, nothing else deleted', async () => {
    const em = app.em();
    const dog = await em.findOneOrFail(Animal, 2);
    em.remove(em.getReference(Animal, 3));
    await sql('delete from ds_animal where id = 2');
    expect(await settle(flushRemoving(em, dog))).toBeInstanceOf(DeletionTargetNotFoundError);
    expect([hooks.count('Animal', 2, 'beforeDelete'), hooks.count('Animal', 3, 'beforeDelete')]).toEqual([0, 0]);
    expect(await sql('select id from ds_animal order by id')).toEqual([{ id: 1 }, { id: 3 }, { id: 4 }]);
  });

  it('a cat removed through a Cat reference and a dog through a Dog reference in one flush', async () => {
    const em = app.em();
    em.remove(em.getReference(Cat, 4));
    em.remove(em.getReference(Dog, 3));
    await em.flush();
    expect(await sql('select id from ds_animal order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(hooks.both('Animal', 3)).toEqual([1, 1]);
    expect(hooks.both('Animal', 4)).toEqual([1, 1]);
  });
});
