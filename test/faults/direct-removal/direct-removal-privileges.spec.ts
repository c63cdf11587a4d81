import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntitySchema, type EntityClass, type EntityManager } from '@mikro-orm/core';
import { definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { fk, intId, named, type Row } from './direct-removal-support.js';

/**
 * Regression guard: a child reached only by `deleteAll` is not locked when a flush removes it
 * directly. The lock (`SELECT ... FOR UPDATE`) needs the UPDATE privilege; a role allowed to read,
 * insert and delete rows of an append-only table (no UPDATE, the usual grant for immutable rows)
 * must still remove them with `em.remove` + `flush`, as MikroORM alone lets it (one DELETE).
 */
const DATABASE = 'deletion_direct_privileges';
/** A cluster-wide role: created if missing, dropped with its grants in afterAll. */
const ROLE = 'deletion_direct_delete_only';

const Journal = named('DpJournal');
const Entry = named('DpEntry'); // deleteAll child of Journal
const Note = named('DpNote'); // no policy reaches it: the control

let app: DeletionTestApp;
const sql = (q: string, p: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(q, p);

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: DATABASE,
    entities: [
      new EntitySchema<Row>({ class: Journal as never, tableName: 'dp_journal', properties: { id: intId, entries: { kind: '1:m', entity: () => Entry, mappedBy: 'journal' } } as never }),
      new EntitySchema<Row>({ class: Entry as never, tableName: 'dp_entry', properties: { id: intId, journal: fk(() => Journal) } as never }),
      new EntitySchema<Row>({ class: Note as never, tableName: 'dp_note', properties: { id: intId } as never }),
    ],
    deletion: { doctor: 'warn', policies: [definePolicy(Journal, { entries: 'deleteAll' } as never)] },
  });
  await sql(`do $$ begin if not exists (select 1 from pg_roles where rolname = '${ROLE}') then create role ${ROLE}; end if; end $$`);
  await sql(`grant select, insert, delete on dp_entry, dp_note to ${ROLE}`);
});

afterAll(async () => {
  if (app) {
    // Its grants live in this database: revoke them here, then the role can go.
    await sql(`do $$ begin if exists (select 1 from pg_roles where rolname = '${ROLE}') then execute 'drop owned by ${ROLE}'; end if; end $$`);
    await sql(`drop role if exists ${ROLE}`);
  }
  await app?.close();
});

beforeEach(async () => {
  await sql('delete from dp_entry');
  await sql('delete from dp_note');
  await sql('insert into dp_entry (id) values (1), (2)');
  await sql('insert into dp_note (id) values (1), (2)');
});

/** Removes `entity`#1 in a transaction running as the delete-only role. */
const removeAsDeleteOnly = (em: EntityManager, entity: EntityClass<Row>) =>
  em.transactional(async (tx) => {
    await tx.getConnection().execute(`set local role ${ROLE}`, [], 'run', tx.getTransactionContext());
    tx.remove(tx.getReference(entity, 1));
  });

describe('a role with SELECT, INSERT, DELETE but no UPDATE on the child table', () => {
  it('control: removes a row of an entity no policy reaches', async () => {
    await removeAsDeleteOnly(app.em(), Note);
    expect(await sql('select id from dp_note')).toEqual([{ id: 2 }]);
  });

  it('removes a row of a deleteAll child with em.remove + flush', async () => {
    await removeAsDeleteOnly(app.em(), Entry);
    expect(await sql('select id from dp_entry')).toEqual([{ id: 2 }]);
  });
});
