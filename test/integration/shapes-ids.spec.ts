import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { EntityClass } from '@mikro-orm/core';
import { DeletionError, definePolicy } from '../../lib/index.js';
import { KEY_KINDS, keyEntities, kidRelation, type KeyEntities, type KeyKind, type KeyValue } from '../fixtures/shapes/keys.entities.js';
import { KeySeeder, outboxFootprint, readTables, tablesAfter, truncate } from '../fixtures/shapes/keys.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';

/**
 * Issue 11, "Ids are values, never filters": `destroy()` and `plan()` take the primary-key value.
 * Anything that is not a value of the key's type is refused with `DeletionInvalidIdError` (400), a
 * valid key with no row with `DeletionTargetNotFoundError` (404); never any other error (a 500),
 * and nothing is deleted, no request row written, nothing enqueued. Today `destroy(Author, {})`
 * deletes some author.
 *
 * (The sample app's `DELETE /authors/:id` parses its id with a pipe before the library sees it, so
 * raw ids do not reach the library over HTTP there; these tests call the service directly.)
 */

/** Ids arrive from HTTP, JSON and untyped code as anything at all: the service without its types. */
interface UntypedDeletions {
  destroy(entity: EntityClass<object>, id: unknown): Promise<unknown>;
  plan(entity: EntityClass<object>, id: unknown): Promise<unknown>;
}
const untyped = (app: DeletionTestApp) => app.deletions as unknown as UntypedDeletions;

const INVALID = { name: 'DeletionInvalidIdError', code: 'DELETION_INVALID_ID', status: 400, serializable: true };
const MISSING = { name: 'DeletionTargetNotFoundError', code: 'DELETION_TARGET_NOT_FOUND', status: 404, serializable: true };
type Expected = 'invalid' | 'missing' | 'invalid or missing';

/** What a call ended in, in a form whose diff says what went wrong. */
async function outcome(call: () => Promise<unknown>): Promise<Record<string, unknown>> {
  const error = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error === undefined) {
    return { resolved: true };
  }
  if (!(error instanceof DeletionError)) {
    return { name: (error as Error)?.constructor?.name, message: (error as Error)?.message };
  }
  let serializable = true;
  try {
    JSON.stringify(error.getResponse());
  } catch {
    serializable = false;
  }
  return { name: error.name, code: error.code, status: error.getStatus(), serializable };
}

function expectOutcome(seen: Record<string, unknown>, expected: Expected): void {
  if (expected === 'invalid or missing') {
    expect([INVALID, MISSING]).toContainEqual(seen);
  } else {
    expect(seen).toEqual(expected === 'invalid' ? INVALID : MISSING);
  }
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
const A_UUID = `${hex(0xdeadbeef, 8)}-1234-4abc-9def-${hex(77, 12)}`;

/** The inputs every key type must refuse, and how. */
function inputs(kind: KeyKind, existing: KeyValue): [string, unknown, Expected][] {
  const numeric = kind.json !== 'string' || kind === KEY_KINDS.bigint || kind === KEY_KINDS.bigintString;
  const isUuid = kind === KEY_KINDS.uuid;
  return [
    ['{}', {}, 'invalid'],
    ['{ $gt: 0 }', { $gt: 0 }, 'invalid'],
    ['{ id: <an existing key> }', { id: existing }, 'invalid'],
    ['[1]', [1], 'invalid'],
    ['[<an existing key>]', [existing], 'invalid'],
    ['[]', [], 'invalid'],
    ['NaN', NaN, 'invalid'],
    ['Infinity', Infinity, 'invalid'],
    ['1.5', 1.5, 'invalid'],
    ["''", '', 'invalid'],
    ["'abc'", 'abc', 'invalid'],
    ["'1; drop table x'", '1; drop table x', 'invalid'],
    ['null', null, 'invalid'],
    ['undefined', undefined, 'invalid'],
    ['true', true, 'invalid'],
    ['a malformed uuid', 'deadbeef-1234-4abc-9def', 'invalid'],
    ['a uuid', A_UUID, isUuid ? 'missing' : 'invalid'],
    // Valid values of the key's type with no row.
    ...(numeric ? ([['an integer with no row', 987_654, 'missing']] as [string, unknown, Expected][]) : []),
    ...(kind === KEY_KINDS.bigint ? ([['a JS bigint with no row', 987_654n, 'missing']] as [string, unknown, Expected][]) : []),
    // Past the column's range: a value the database cannot hold is no row, never a driver error.
    ...(kind === KEY_KINDS.integer ? ([['2^31 (past int4)', 2 ** 31, 'invalid or missing']] as [string, unknown, Expected][]) : []),
    ...(numeric ? ([["'99999999999999999999' (past int8)", '99999999999999999999', 'invalid or missing']] as [string, unknown, Expected][]) : []),
  ];
}

const SHAPES = [KEY_KINDS.integer, KEY_KINDS.uuid, KEY_KINDS.bigint].map((kind) => [kind.name, keyEntities(kind)] as const);

describe.each(SHAPES)('%s keys', (_name, entities: KeyEntities) => {
  const { kind, Parent } = entities;
  // Keys 1…99 are the test's own; the seeder hands out keys from 100 on.
  const seeder = new KeySeeder(entities, 100);
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_shapes_ids_${kind.prefix.toLowerCase()}`,
      entities: entities.schemas,
      deletion: { policies: [definePolicy(Parent, { [kidRelation('destroyAsync')]: 'destroyAsync' })] },
    });
  });
  afterAll(() => app?.close());
  // Rows an id mistaken for a filter would find: keys 1, 2 and 3, each with children (afresh, should a test have deleted one).
  beforeEach(async () => {
    await truncate(app.em(), entities);
    for (const n of [1, 2, 3]) {
      await seeder.parent(app.em(), { destroyAsync: 2 }, `parent ${n}`, kind.key(n));
    }
  });

  describe.each([
    ['destroy', (app: DeletionTestApp, id: unknown) => untyped(app).destroy(Parent, id)],
    ['plan', (app: DeletionTestApp, id: unknown) => untyped(app).plan(Parent, id)],
  ] as const)('%s()', (_method, call) => {
    it.each(inputs(kind, kind.key(1)))('refuses %s, and deletes nothing', async (_label, id, expected) => {
      const before = await readTables(app.em(), entities);
      const outbox = await outboxFootprint(app);

      expectOutcome(await outcome(() => call(app, id)), expected);

      expect(await readTables(app.em(), entities)).toEqual(before);
      expect(await outboxFootprint(app)).toEqual(outbox);
    });
  });

  it(`accepts the key given as a string ('${String(kind.key(42))}') and deletes that row only`, async () => {
    const key = kind.key(42);
    await seeder.parent(app.em(), { destroyAsync: 2 }, 'forty-two', key);
    const before = await readTables(app.em(), entities);

    const receipt = (await untyped(app).destroy(Parent, String(key))) as { requestId?: string; status: string };

    expect(receipt.status).toBe('pending');
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await readTables(app.em(), entities)).toEqual(tablesAfter(entities, before, key, 'destroyAsync', 'delete'));
  });
});
