import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { DeletionRestrictedError, definePolicy } from '../../lib/index.js';
import { BOARD_ENTITIES, Board, Card } from '../fixtures/board.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { requestStates, scalar } from '../support/fault-checks.js';
import { waitForState } from '../support/wait.js';

/**
 * A many-to-many `restrict` reached through a queued policy is counted in the request (and in
 * plan()), as its synchronous counterpart would refuse: never only in the queue, after the parent
 * is gone. It counts pivot rows; the shared labels are never touched.
 */
let app: DeletionTestApp;
beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_async_restrict_m2m',
    entities: BOARD_ENTITIES,
    deletion: { policies: [definePolicy(Board, { cards: 'destroyAsync' }), definePolicy(Card, { labels: 'restrict' })] },
  });
});
afterAll(() => app?.close());
const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute<Record<string, unknown>[]>(query, params);

it('refuses in the request while a card of the board is labelled, plan() counts the pivot rows, and nothing is written', async () => {
  const [{ id: board }] = (await sql('insert into board default values returning id')) as { id: number }[];
  await sql('insert into card (board_id) select ? from generate_series(1, 3)', [board]);
  await sql(`insert into label (name) values ('urgent'), ('later')`);
  await sql('insert into card_labels (card_id, label_id) select min(c.id), l.id from card c, label l where c.board_id = ? group by l.id', [board]);
  const statesBefore = await requestStates(app);

  const error = await app.deletions.destroy(Board, board!).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(DeletionRestrictedError);
  expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Card', relation: 'labels', childEntity: 'Label', count: 2 });
  expect(await requestStates(app)).toEqual(statesBefore);
  expect(await scalar(app, 'select count(*) from card where board_id = ?', [board])).toBe(3);
  expect(await scalar(app, 'select count(*) from board where id = ?', [board])).toBe(1);

  const plan = await app.deletions.plan(Board, board!);
  expect(plan.allowed).toBe(false);
  expect(plan.paths).toContainEqual(expect.objectContaining({ path: 'Board.cards.labels', policy: 'restrict', timing: 'later', rows: 2, effect: 'refuse' }));

  // Unlabelled, the same deletion goes through; the labels, shared, stay.
  await sql('delete from card_labels');
  const receipt = await app.deletions.destroy(Board, board!);
  expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
  expect(await scalar(app, 'select count(*) from card where board_id = ?', [board])).toBe(0);
  expect(await scalar(app, 'select count(*) from label')).toBe(2);
});
