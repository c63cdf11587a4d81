import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BadRequestException } from '@nestjs/common';
import { CascadeProcessor } from '../../lib/queue/cascade.processor.js';
import { ParseIdPipe } from '../../sample-app/src/common/parse-id.pipe.js';
import { pollDeletion, startSampleApp, type SampleAppFixture } from '../support/sample-app-fixture.js';

/**
 * The sample app over HTTP, booted as `npm start` boots it, against the real PostgreSQL and Redis.
 * Authors are tombstoned and their books queued (202); a book's own deletion is synchronous (204).
 */
let sample: SampleAppFixture;

beforeAll(async () => {
  sample = await startSampleApp('deletion_e2e_sample');
});
afterAll(() => sample?.close());

interface AuthorShape {
  books?: number;
  reviewsPerBook?: number;
  followers?: number;
  articles?: number;
  contractEndsAt?: string;
}

async function createAuthor(shape: AuthorShape = {}): Promise<number> {
  const response = await sample
    .http()
    .post('/authors')
    .send({ name: 'Ann', books: 3, reviewsPerBook: 2, followers: 4, articles: 1, ...shape })
    .expect(201);
  return (response.body as { id: number }).id;
}

async function firstBookOf(author: number): Promise<number> {
  const response = await sample.http().get(`/authors/${author}/books?limit=1`).expect(200);
  return (response.body as { id: number }[])[0]!.id;
}

/** Every row an author's deletion touches, read behind the API (so tombstoned rows count too). */
async function footprint(author: number) {
  return {
    author: await sample.count('author', 'id = ?', [author]),
    profile: await sample.count('author_profile', 'author_id = ?', [author]),
    books: await sample.count('book', 'author_id = ?', [author]),
    reviews: await sample.count('review', 'book_id in (select id from book where author_id = ?)', [author]),
    followers: await sample.count('follower', 'author_id = ?', [author]),
    articles: await sample.count('article', 'author_id = ?', [author]),
  };
}

describe('POST /authors', () => {
  it('creates an author with N books of M reviews, followers, articles and a profile', async () => {
    const response = await sample
      .http()
      .post('/authors')
      .send({ name: 'Bea', books: 40, reviewsPerBook: 5, followers: 12, articles: 2 })
      .expect(201);
    const id = (response.body as { id: number }).id;
    expect(response.body).toEqual({ id, name: 'Bea', books: 40, reviews: 200, followers: 12, articles: 2 });

    const summary = await sample.http().get(`/authors/${id}`).expect(200);
    expect(summary.body).toEqual({ id, name: 'Bea', contractEndsAt: null, hasProfile: true, books: 40, reviews: 200, followers: 12, articles: 2 });
    expect(await footprint(id)).toEqual({ author: 1, profile: 1, books: 40, reviews: 200, followers: 12, articles: 2 });
  });

  it('pages the author’s books by id', async () => {
    const id = await createAuthor({ books: 5 });
    const first = (await sample.http().get(`/authors/${id}/books?limit=3`).expect(200)).body as { id: number; legalHold: boolean }[];
    expect(first).toHaveLength(3);
    expect(first.every((book) => book.legalHold === false)).toBe(true);
    const rest = (await sample.http().get(`/authors/${id}/books?after=${first[2]!.id}`).expect(200)).body as { id: number }[];
    expect(rest.map((book) => book.id)).toEqual([first[2]!.id + 1, first[2]!.id + 2]);
    await sample.http().get(`/authors/${id}/books?limit=0`).expect(400);
    await sample.http().get(`/authors/${id}/books?limit=1&limit=2`).expect(400);
  });

  it.each([
    ['no name', { books: 1 }],
    ['a negative count', { name: 'x', books: -1 }],
    ['a fractional count', { name: 'x', reviewsPerBook: 1.5 }],
    ['too many reviews at once', { name: 'x', books: 1_000_000, reviewsPerBook: 1000 }],
    ['an unreadable date', { name: 'x', contractEndsAt: 'soon' }],
  ])('answers 400 for %s, creating nothing', async (_case, body) => {
    const before = await sample.count('author');
    const response = await sample.http().post('/authors').send(body).expect(400);
    expect(response.body).toMatchObject({ statusCode: 400, code: 'INVALID_AUTHOR' });
    expect(await sample.count('author')).toBe(before);
  });
});

describe('DELETE /authors/:id', () => {
  it('answers 202 with the request id and a status URL; the author is gone at once, its rows once the status is completed', async () => {
    // More books and followers than one batch of each (1000 and 5000): the queue runs several.
    const id = await createAuthor({ books: 1200, reviewsPerBook: 2, followers: 6000, articles: 3 });
    const bystander = await createAuthor();
    const bystanderRows = await footprint(bystander);
    const articles = (await sample.sql<{ id: number }>('select id from article where author_id = ?', [id])).map((row) => row.id);

    const response = await sample.http().delete(`/authors/${id}`).expect(202);
    const { requestId } = response.body as { requestId: string };
    expect(requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(response.body).toEqual({ entity: 'Author', id, status: 'pending', requestId, statusUrl: `/deletions/${requestId}` });
    expect(response.headers.location).toBe(`/deletions/${requestId}`);

    // Tombstoned: hidden from every reader at once, and a second DELETE finds nothing.
    await sample.http().get(`/authors/${id}`).expect(404);
    await sample.http().delete(`/authors/${id}`).expect(404);
    // The synchronous policies ran in the request: the profile is destroyed, the articles detached.
    expect(await footprint(id)).toMatchObject({ author: 1, profile: 0, articles: 0 });

    const status = await pollDeletion(sample, `/deletions/${requestId}`);
    expect(status).toMatchObject({ requestId, rootId: requestId, entity: 'Author', ids: [id], state: 'completed', errors: [] });
    expect(status.progress).toEqual(
      expect.arrayContaining([
        { path: 'Author.books', entity: 'Book', policy: 'destroyAsync', processed: 1200, done: true },
        { path: 'Author.followers', entity: 'Follower', policy: 'deleteAllAsync', processed: 6000, done: true },
      ]),
    );

    expect(await footprint(id)).toEqual({ author: 0, profile: 0, books: 0, reviews: 0, followers: 0, articles: 0 });
    // nullify: the articles stay, unattributed.
    expect(await sample.sql('select author_id from article where id in (?, ?, ?)', articles)).toEqual([{ author_id: null }, { author_id: null }, { author_id: null }]);
    expect(await footprint(bystander)).toEqual(bystanderRows);
  });

  it('answers 409 with the blockers when a book is under legal hold, and deletes nothing; 202 once the hold is lifted', async () => {
    const id = await createAuthor({ books: 4, reviewsPerBook: 2 });
    const held = await firstBookOf(id);
    await sample.http().put(`/books/${held}/legal-hold`).expect(204);
    const before = await footprint(id);
    const requests = await sample.count('deletion_request');

    const refused = await sample.http().delete(`/authors/${id}`).expect(409);
    expect(refused.body).toMatchObject({
      statusCode: 409,
      code: 'DELETION_BLOCKED',
      entity: 'Author',
      id,
      total: 1,
      blockers: [{ entity: 'Book', id: held, path: 'Author.books', reason: 'book is under legal hold' }],
    });
    expect(await footprint(id)).toEqual(before);
    expect(await sample.count('deletion_request')).toBe(requests);
    await sample.http().get(`/authors/${id}`).expect(200);

    await sample.http().delete(`/books/${held}/legal-hold`).expect(204);
    const accepted = await sample.http().delete(`/authors/${id}`).expect(202);
    expect((await pollDeletion(sample, (accepted.body as { statusUrl: string }).statusUrl)).state).toBe('completed');
    expect(await footprint(id)).toEqual({ author: 0, profile: 0, books: 0, reviews: 0, followers: 0, articles: 0 });
  });

  it('answers 409 when the author’s own instance validator refuses (a running contract)', async () => {
    const until = new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString();
    const id = await createAuthor({ contractEndsAt: until });
    const before = await footprint(id);
    const refused = await sample.http().delete(`/authors/${id}`).expect(409);
    expect(refused.body).toMatchObject({
      code: 'DELETION_BLOCKED',
      total: 1,
      blockers: [{ entity: 'Author', id, path: 'Author', reason: `author is under contract until ${until}` }],
    });
    expect(await footprint(id)).toEqual(before);
  });

  it('answers 404 for an author that does not exist', async () => {
    const response = await sample.http().delete('/authors/2147483647').expect(404);
    expect(response.body).toMatchObject({ statusCode: 404, code: 'DELETION_TARGET_NOT_FOUND', entity: 'Author', id: 2147483647 });
  });

  it.each(['abc', '1.5', '99999999999999999999', '2147483648', '1,2', '-1', '0', '007', '%20'])('answers 400 for the id %p', async (raw) => {
    const response = await sample.http().delete(`/authors/${raw}`).expect(400);
    expect(response.body).toMatchObject({ statusCode: 400, code: 'INVALID_ID' });
  });

  it('refuses an empty or non-string id in the pipe; over HTTP, DELETE /authors/ matches no route', async () => {
    const pipe = new ParseIdPipe();
    for (const raw of ['', ['1', '2'], 1, undefined]) {
      expect(() => pipe.transform(raw, { type: 'param', data: 'id' })).toThrow(BadRequestException);
    }
    expect(pipe.transform('2147483647', { type: 'param', data: 'id' })).toBe(2147483647);
    // An empty segment never reaches `:id`: Express routes it to DELETE /authors, which does not exist.
    await sample.http().delete('/authors/').expect(404);
  });
});

describe('DELETE /books/:id (all synchronous)', () => {
  it('answers 204: the book and its reviews are gone when the response arrives, nothing is queued', async () => {
    const author = await createAuthor({ books: 3, reviewsPerBook: 4 });
    const book = await firstBookOf(author);
    await sample.http().get(`/books/${book}`).expect(200, { id: book, title: 'Book 1', authorId: author, legalHold: false, reviews: 4 });
    const requests = await sample.count('deletion_request');

    const response = await sample.http().delete(`/books/${book}`).expect(204);
    expect(response.text).toBe('');
    expect(await sample.count('book', 'id = ?', [book])).toBe(0);
    expect(await sample.count('review', 'book_id = ?', [book])).toBe(0);
    expect(await sample.count('deletion_request')).toBe(requests);
    expect(await footprint(author)).toMatchObject({ author: 1, books: 2, reviews: 8 });
    await sample.http().get(`/books/${book}`).expect(404);
  });

  it('answers 409 for a book under legal hold, 404 for an unknown one', async () => {
    const book = await firstBookOf(await createAuthor());
    await sample.http().put(`/books/${book}/legal-hold`).expect(204);
    const refused = await sample.http().delete(`/books/${book}`).expect(409);
    expect(refused.body).toMatchObject({ code: 'DELETION_BLOCKED', blockers: [{ entity: 'Book', id: book, path: 'Book', reason: 'book is under legal hold' }] });
    expect(await sample.count('book', 'id = ?', [book])).toBe(1);
    await sample.http().delete('/books/2147483647').expect(404);
    await sample.http().put('/books/2147483647/legal-hold').expect(404);
  });
});

describe('GET /authors/:id/deletion-plan', () => {
  it('lists every relation path with its policy, timing and row count, writing nothing', async () => {
    const id = await createAuthor({ books: 3, reviewsPerBook: 2, followers: 5, articles: 2 });
    const before = await footprint(id);
    const response = await sample.http().get(`/authors/${id}/deletion-plan`).expect(200);
    const path = (p: string, entity: string, policy: string, timing: string, rows: number, effect: string) => ({
      path: p,
      entity,
      policy,
      timing,
      rows,
      effect,
      blockers: [],
      blockedTotal: 0,
    });
    expect(response.body).toEqual({ entity: 'Author', id, allowed: true, blockers: [], blockedTotal: 0, paths: expect.any(Array) });
    const paths = (response.body as { paths: unknown[] }).paths;
    expect(paths).toHaveLength(6);
    expect(paths).toEqual(
      expect.arrayContaining([
        // Tombstone mode: the author is marked in the request, and deleted once its cascade is done.
        { ...path('Author', 'Author', 'root', 'now', 1, 'mark'), later: 'delete' },
        path('Author.profile', 'AuthorProfile', 'destroy', 'now', 1, 'delete'),
        path('Author.articles', 'Article', 'nullify', 'now', 2, 'detach'),
        path('Author.followers', 'Follower', 'deleteAllAsync', 'later', 5, 'delete'),
        path('Author.books', 'Book', 'destroyAsync', 'later', 3, 'delete'),
        path('Author.books.reviews', 'Review', 'deleteAll', 'later', 6, 'delete'),
      ]),
    );
    expect(await footprint(id)).toEqual(before);
  });

  it('shows the blockers and allowed: false when a book is under legal hold', async () => {
    const id = await createAuthor({ books: 2 });
    const held = await firstBookOf(id);
    await sample.http().put(`/books/${held}/legal-hold`).expect(204);
    const response = await sample.http().get(`/authors/${id}/deletion-plan`).expect(200);
    const blocker = { entity: 'Book', id: held, path: 'Author.books', reason: 'book is under legal hold' };
    expect(response.body).toMatchObject({ allowed: false, blockers: [blocker], blockedTotal: 1 });
    expect((response.body as { paths: { path: string }[] }).paths.find((p) => p.path === 'Author.books')).toMatchObject({ blockers: [blocker], blockedTotal: 1 });
  });

  it('answers 404 for an unknown author and 400 for a malformed id', async () => {
    await sample.http().get('/authors/2147483647/deletion-plan').expect(404);
    await sample.http().get('/authors/abc/deletion-plan').expect(400);
  });
});

describe('GET /deletions/:id', () => {
  it('answers 404 for an unknown request id and 400 for one that is not a UUID', async () => {
    const unknown = await sample.http().get('/deletions/00000000-0000-4000-8000-000000000000').expect(404);
    expect(unknown.body).toMatchObject({ statusCode: 404, code: 'DELETION_REQUEST_NOT_FOUND' });
    await sample.http().get('/deletions/not-a-uuid').expect(400);
  });
});

describe('GET /health', () => {
  it('is up, with the database ping and the deletion indicator', async () => {
    const response = await sample.http().get('/health').expect(200);
    const deletion = {
      status: 'up',
      waiting: expect.any(Number),
      active: expect.any(Number),
      delayed: expect.any(Number),
      failed: 0,
      failedRequests: 0,
      oldestPendingMs: null,
      sweeperRequests: 0,
    };
    expect(response.body).toEqual({
      status: 'ok',
      info: { database: expect.objectContaining({ status: 'up' }), deletion },
      error: {},
      details: { database: expect.objectContaining({ status: 'up' }), deletion },
    });
  });
});

// Last: the failure it provokes is what /health reports while it lasts.
describe('a deletion refused in the queue (a legal hold placed after the 202)', () => {
  it('fails visibly (status, /health 503), and POST /deletions/:id/retry completes it once the hold is lifted', async () => {
    const id = await createAuthor({ books: 30, reviewsPerBook: 1 });
    const held = await firstBookOf(id);
    // The worker waits while the hold is placed, so the queue re-checks the validators against it.
    const worker = sample.app.get(CascadeProcessor).worker;
    await worker.pause();
    let accepted: { requestId: string; statusUrl: string };
    try {
      accepted = (await sample.http().delete(`/authors/${id}`).expect(202)).body as typeof accepted;
      await sample.http().put(`/books/${held}/legal-hold`).expect(204);
    } finally {
      worker.resume();
    }
    const { requestId, statusUrl } = accepted;

    const failed = await pollDeletion(sample, statusUrl);
    expect(failed.state).toBe('failed');
    expect(failed.errors).toEqual([
      {
        requestId,
        path: 'Author',
        state: 'failed',
        error: expect.objectContaining({
          code: 'DELETION_BLOCKED',
          blockers: [expect.objectContaining({ entity: 'Book', id: held, reason: 'book is under legal hold' })],
        }),
      },
    ]);
    // The refused batch rolled back whole; the author stays tombstoned (hidden, not deleted).
    expect(await footprint(id)).toMatchObject({ author: 1, books: 30, reviews: 30 });
    await sample.http().get(`/authors/${id}`).expect(404);

    const down = await sample.http().get('/health').expect(503);
    expect(down.body).toMatchObject({
      status: 'error',
      info: { database: { status: 'up' } },
      error: { deletion: { status: 'down', failedRequests: 1, reason: expect.stringContaining('1 failed deletion request') } },
    });

    await sample.http().delete(`/books/${held}/legal-hold`).expect(204);
    const retried = await sample.http().post(`${statusUrl}/retry`).expect(202);
    expect(retried.body).toMatchObject({ requestId, statusUrl });
    expect((await pollDeletion(sample, statusUrl)).state).toBe('completed');
    expect(await footprint(id)).toEqual({ author: 0, profile: 0, books: 0, reviews: 0, followers: 0, articles: 0 });
    expect((await sample.http().get('/health').expect(200)).body).toMatchObject({ status: 'ok', info: { deletion: { failedRequests: 0 } } });
  });

  it('answers 404 to a retry of an unknown request', async () => {
    const response = await sample.http().post('/deletions/00000000-0000-4000-8000-000000000000/retry').expect(404);
    expect(response.body).toMatchObject({ code: 'DELETION_REQUEST_NOT_FOUND' });
  });
});
