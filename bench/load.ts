/**
 * Load test of the sample app (issue 7): LOAD_REQUESTS authors, each with books (destroyAsync, their
 * reviews deleteAll), followers (deleteAllAsync), a profile (destroy) and articles (nullify), are
 * deleted by as many concurrent `DELETE /authors/:id`, plus duplicates (the same author twice) and
 * unknown ids. A share of the authors is blocked by a validator: half by a book under legal hold,
 * half by a running contract.
 *
 * The sample app runs as `npm start` runs it, in a child process on the real PostgreSQL and Redis
 * (database and BullMQ prefix `deletion_load`), with LOAD_WORKERS more instances of it as extra
 * workers. Every response must be a 202, 409 or 404 with its documented body, and the one its
 * author calls for; every 202 must reach `completed`; then the database is checked: accepted
 * authors and their rows are gone, refused ones untouched, no request left open or failed.
 * Prints p50/p99 latency and the drain time (first DELETE sent to last deletion completed), writes
 * `bench/results/load.json`, and exits non-zero when any of this fails.
 *
 *   LOAD_REQUESTS=1000 LOAD_BOOKS=20 LOAD_REVIEWS_PER_BOOK=5 LOAD_FOLLOWERS=10 npm run load
 *
 * Also: LOAD_ARTICLES (1), LOAD_BLOCKED_SHARE (0.05), LOAD_DUPLICATE_SHARE (0.02),
 * LOAD_UNKNOWN_SHARE (0.01), LOAD_WORKERS (0), LOAD_CONNECTIONS (one per request),
 * LOAD_REQUEST_TIMEOUT_MS (60000), LOAD_DRAIN_TIMEOUT_MS (600000), LOAD_BASELINE (20): that
 * many more authors are deleted one at a time before the burst, for the latency of a lone DELETE,
 * and LOAD_PROFILE (a directory): the HTTP app runs with `--cpu-prof` into it, and where its CPU
 * time went during the burst and during the drain is printed and kept in `load.json`'s `profile`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';
import { DELETION_QUEUE } from '../lib/queue/deletion-queue.constants.js';
import { redisConnection } from '../sample-app/src/app.config.js';
import { unusedPort } from '../test/support/ports.js';
import { REDIS_URL, createTestDatabase, databaseUrl } from '../test/support/services.js';
import { profileLengthMs, summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import { percentile, printTable, writeResult } from './support.js';

const DATABASE = 'deletion_load';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const authors = whole('LOAD_REQUESTS', 1000, 1);
const shape = {
  books: whole('LOAD_BOOKS', 20),
  reviewsPerBook: whole('LOAD_REVIEWS_PER_BOOK', 5),
  followers: whole('LOAD_FOLLOWERS', 10),
  articles: whole('LOAD_ARTICLES', 1),
};
const blockedShare = share('LOAD_BLOCKED_SHARE', 0.05);
const duplicateShare = share('LOAD_DUPLICATE_SHARE', 0.02);
const unknownShare = share('LOAD_UNKNOWN_SHARE', 0.01);
const baseline = whole('LOAD_BASELINE', 20);
const extraWorkers = whole('LOAD_WORKERS', 0);
const requestTimeoutMs = whole('LOAD_REQUEST_TIMEOUT_MS', 60_000, 1);
const drainTimeoutMs = whole('LOAD_DRAIN_TIMEOUT_MS', 600_000, 1);
const profileDir = process.env.LOAD_PROFILE || undefined;

/** What an author was seeded to answer to its DELETE. */
type Target = { id: number; kind: 'deletable' | 'legalHold' | 'contract' | 'unknown' };
interface Reply {
  status: number;
  location?: string;
  text: string;
  ms: number;
}
interface Shot {
  target: Target;
  reply?: Reply;
  error?: string;
}
/** The rows an author's deletion touches, summed over a set of authors. */
interface Footprint {
  authors: number;
  visible: number;
  profiles: number;
  books: number;
  reviews: number;
  followers: number;
  articles: number;
}

async function main(): Promise<void> {
  const failures: string[] = [];
  const port = await unusedPort();
  const url = databaseUrl(DATABASE);
  await createTestDatabase(DATABASE);
  // Jobs of an earlier, interrupted run would name requests of the database just dropped.
  const stale = new Queue(DELETION_QUEUE, { connection: redisConnection(REDIS_URL), prefix: DATABASE });
  await stale.obliterate({ force: true }).finally(() => stale.close());

  const apps: SampleAppProcess[] = [];
  const db = new pg.Pool({ connectionString: url, max: 4 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  try {
    // One at a time: each instance brings the schema up to date at boot.
    apps.push(await SampleAppProcess.start('app', port, url, profileDir));
    for (let w = 1; w <= extraWorkers; w++) {
      apps.push(await SampleAppProcess.start(`worker${w}`, await unusedPort(), url));
    }
    const get = (path: string) => send(agent, port, 'GET', path);

    const seedStarted = performance.now();
    const targets = await seed(agent, port);
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    process.stdout.write(`Seeded ${targets.length - countKind(targets, 'unknown')} authors in ${seedSeconds.toFixed(1)} s\n`);

    const alone = new Set(targets.filter((t) => t.kind === 'deletable').slice(0, baseline));
    const sequential = await deleteOneByOne(agent, port, db, [...alone], failures);
    const shots = plan(targets.filter((t) => !alone.has(t)));
    const seededRows = await totalRows(db);
    process.stdout.write(`${sequential.length} DELETEs one at a time, drained; firing ${shots.length} DELETEs at once on ${seededRows} rows\n`);

    // The floor of any burst: as many DELETEs at once on a route the app does not have (Nest
    // answers 404 with no work), over the same HTTP stack, same connections, same machine.
    const floorSent = Date.now();
    const floorReplies = await fireAtOnce(port, shots, (shot) => `/no-such-route/${shot.target.id}`);
    const floorSeconds = (Date.now() - floorSent) / 1000;
    if (floorReplies.some((reply) => reply?.status !== 404)) {
      failures.push(`the HTTP floor's requests were not all answered 404`);
    }

    const firstSent = Date.now();
    await fireAtOnce(port, shots);
    const lastAnswered = Date.now();
    const burstSeconds = (lastAnswered - firstSent) / 1000;
    checkReplies([...sequential, ...shots], failures);

    const lastCompleted = await drain(db, receipts(shots).map((r) => r.requestId), failures);
    const drainSeconds = ((lastCompleted ?? Date.now()) - firstSent) / 1000;
    const deleted = shots.filter((s) => s.reply?.status === 202 || s.reply?.status === 204).map((s) => s.target.id);

    await checkStatuses(get, receipts([...sequential, ...shots]), failures);
    await checkDatabase(db, targets, [...deleted, ...sequential.map((s) => s.target.id)], failures);
    const health = await get('/health');
    if (health.status !== 200 || (parse(health.text) as { status?: string }).status !== 'ok') {
      failures.push(`GET /health answered ${health.status}: ${health.text}`);
    }
    const rowsDeleted = seededRows - (await totalRows(db));
    const expectedRows = deleted.length * (2 + shape.books * (1 + shape.reviewsPerBook) + shape.followers);
    if (rowsDeleted !== expectedRows) {
      failures.push(`${rowsDeleted} rows were deleted, ${expectedRows} expected (${deleted.length} authors of ${expectedRows / Math.max(1, deleted.length)} rows)`);
    }

    // Stopped before the verdict: an error logged while shutting down, or no exit, fails the run.
    await Promise.all(apps.map((app) => app.stop()));
    const profile = profileDir ? await profileOf(apps[0]!, { burst: [firstSent, lastAnswered], drain: [lastAnswered, lastCompleted ?? Date.now()] }) : undefined;
    const latencies = shots.filter((s) => s.reply).map((s) => s.reply!.ms);
    const lone = sequential.filter((s) => s.reply).map((s) => s.reply!.ms);
    const statuses = (code: number) => shots.filter((s) => s.reply?.status === code).length;
    const unknownNotFound = shots.filter((s) => s.reply?.status === 404 && s.target.kind === 'unknown').length;
    const notFound = { duplicate: statuses(404) - unknownNotFound, unknown: unknownNotFound };
    const errors = shots.filter((s) => s.error || bodyProblem(s.target.id, s.reply!)).length;
    const appErrors = apps.flatMap((app) => app.errors);
    const appWarnings = apps.flatMap((app) => app.warnings);
    if (appErrors.length > 0) {
      failures.push(`the app logged ${appErrors.length} error line(s), first: ${appErrors[0]}`);
    }
    const result = {
      requests: shots.length,
      accepted: statuses(202),
      completedInRequest: statuses(204),
      rejected409: statuses(409),
      notFound404: notFound,
      errors,
      latencyMs: latencies.length ? { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) } : { p50: NaN, p99: NaN, max: NaN },
      sequentialLatencyMs: lone.length ? { count: lone.length, p50: percentile(lone, 50), max: Math.max(...lone) } : null,
      latencyByStatusMs: Object.fromEntries(
        [202, 409, 404].map((code) => {
          const ms = shots.filter((s) => s.reply?.status === code).map((s) => s.reply!.ms);
          return [code, ms.length ? { p50: percentile(ms, 50), p99: percentile(ms, 99) } : null];
        }),
      ),
      burstSeconds,
      // The same number of requests at once, answered 404 by a route the app does not have.
      httpFloorSeconds: floorSeconds,
      deletionsPerSecond: Math.round(shots.length / burstSeconds),
      drainSeconds,
      rowsDeleted,
      rowsPerSecond: drainSeconds > 0 ? Math.round(rowsDeleted / drainSeconds) : 0,
      seedSeconds,
      shape: { authors, baseline, ...shape, blockedShare, duplicateShare, unknownShare },
      processes: { http: 1, extraWorkers },
      appWarnings: appWarnings.length,
      ...(profile ? { profile } : {}),
      failures,
    };
    printTable([
      ['requests', 'accepted', 'rejected 409', 'not found 404', 'errors', 'p50 ms', 'p99 ms', 'max ms', 'drain s', 'rows deleted', 'rows/s'],
      [result.requests, result.accepted + result.completedInRequest, result.rejected409, statuses(404), errors, result.latencyMs.p50, result.latencyMs.p99, result.latencyMs.max, drainSeconds, rowsDeleted, result.rowsPerSecond],
    ]);
    process.stdout.write(
      `404s: ${notFound.duplicate} duplicate, ${notFound.unknown} unknown id; all responses within ${burstSeconds.toFixed(2)} s ` +
        `(${result.deletionsPerSecond}/s; the same number of requests to a missing route: ${floorSeconds.toFixed(2)} s); ` +
        `a lone DELETE: p50 ${result.sequentialLatencyMs?.p50.toFixed(1) ?? '-'} ms; app warnings: ${appWarnings.length}\n`,
    );
    for (const line of appWarnings.slice(0, 5)) {
      process.stdout.write(`  ${line}\n`);
    }
    for (const [phase, summary] of Object.entries(profile ?? {})) {
      printProfile(phase, summary);
    }
    await writeResult('load', result);
  } finally {
    agent.destroy();
    await Promise.all(apps.map((app) => app.stop()));
    await db.end();
  }
  if (failures.length > 0) {
    process.stderr.write(`\n${failures.length} invariant(s) failed:\n${failures.slice(0, 50).map((f) => `  - ${f}`).join('\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('All invariants hold.\n');
  }
}

/**
 * The app's CPU profile over each phase, given as wall-clock times. `--cpu-prof` ends the profile
 * when the process exits: a phase's offset in the profile is counted back from the exit.
 */
async function profileOf(app: SampleAppProcess, phases: Record<string, [number, number]>): Promise<Record<string, ProfileSummary>> {
  const file = app.profileFile!;
  const length = await profileLengthMs(file);
  const offset = (wall: number) => length - (app.exitedAt! - wall);
  const out: Record<string, ProfileSummary> = {};
  for (const [phase, [from, to]] of Object.entries(phases)) {
    out[phase] = await summarizeProfile(file, offset(from), offset(to));
  }
  return out;
}

function printProfile(phase: string, summary: ProfileSummary): void {
  const areas = Object.entries(summary.areas).map(([area, ms]) => `${area} ${((ms / summary.windowMs) * 100).toFixed(1)}%`);
  process.stdout.write(`\nCPU of the app during the ${phase} (${summary.windowMs} ms, busy ${(summary.busy * 100).toFixed(0)}%): ${areas.join(', ')}\n`);
  for (const { frame, ms } of summary.top) {
    process.stdout.write(`  ${String(ms).padStart(6)} ms  ${frame}\n`);
  }
}

/**
 * The latency of a lone DELETE on the same, idle app (each cascade drained before the next
 * request), to read the burst's figures against.
 */
async function deleteOneByOne(agent: http.Agent, port: number, db: pg.Pool, targets: readonly Target[], failures: string[]): Promise<Shot[]> {
  const shots: Shot[] = [];
  for (const target of targets) {
    const shot: Shot = { target };
    await send(agent, port, 'DELETE', `/authors/${target.id}`).then(
      (reply) => void (shot.reply = reply),
      (error: Error) => void (shot.error = error.message),
    );
    shots.push(shot);
    await drain(db, receipts([shot]).map((r) => r.requestId), failures);
  }
  return shots;
}

/**
 * Sends every shot's DELETE at once: all are handed to the agent in one tick, each on a connection
 * of its own unless LOAD_CONNECTIONS caps them. Records each reply or transport error on its shot,
 * unless `path` sends them elsewhere: then returns the replies.
 */
async function fireAtOnce(port: number, shots: readonly Shot[], path?: (shot: Shot) => string): Promise<(Reply | undefined)[]> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: whole('LOAD_CONNECTIONS', shots.length, 1) });
  try {
    return await Promise.all(
      shots.map((shot) =>
        send(agent, port, 'DELETE', path ? path(shot) : `/authors/${shot.target.id}`).then(
          (reply) => {
            if (!path) {
              shot.reply = reply;
            }
            return reply;
          },
          (error: Error) => {
            if (!path) {
              shot.error = error.message;
            }
            return undefined;
          },
        ),
      ),
    );
  } finally {
    agent.destroy();
  }
}

/**
 * Creates the authors through `POST /authors`, then blocks a share of them: a future
 * `contractEndsAt` (the Author validator), or a legal hold on one book (the Book validator).
 * Returns them with the unknown ids appended.
 */
async function seed(agent: http.Agent, port: number): Promise<Target[]> {
  const blocked = Math.round(authors * blockedShare);
  const kinds: Target['kind'][] = shuffle(
    Array.from({ length: authors + baseline }, (_, i) => (i >= blocked ? 'deletable' : i % 2 === 0 && shape.books > 0 ? 'legalHold' : 'contract')),
  );
  const targets: Target[] = new Array(kinds.length);
  await forEachLimit(kinds, 32, async (kind, i) => {
    const body = { name: `Load ${i}`, ...shape, ...(kind === 'contract' ? { contractEndsAt: '2100-01-01T00:00:00.000Z' } : {}) };
    const created = await expectReply(send(agent, port, 'POST', '/authors', body), 201);
    const id = (created as { id: number }).id;
    if (kind === 'legalHold') {
      const [book] = (await expectReply(send(agent, port, 'GET', `/authors/${id}/books?limit=1`), 200)) as { id: number }[];
      await expectReply(send(agent, port, 'PUT', `/books/${book!.id}/legal-hold`), 204);
    }
    targets[i] = { id, kind };
  });
  const highest = Math.max(...targets.map((t) => t.id));
  const unknown = Array.from({ length: Math.round(authors * unknownShare) }, (_, i): Target => ({ id: highest + 1_000_000 + i, kind: 'unknown' }));
  return [...targets, ...unknown];
}

/** The receipts of the 202s among `shots`. */
function receipts(shots: readonly Shot[]): { id: number; requestId: string; statusUrl: string }[] {
  return shots.filter((s) => s.reply?.status === 202 && !bodyProblem(s.target.id, s.reply)).map((s) => parse(s.reply!.text) as { id: number; requestId: string; statusUrl: string });
}

/** One DELETE per target, a second one for a share of the deletable authors, in random order. */
function plan(targets: readonly Target[]): Shot[] {
  const deletable = targets.filter((t) => t.kind === 'deletable');
  const twice = new Set(shuffle(deletable).slice(0, Math.round(authors * duplicateShare)));
  // A duplicate follows its original at once, so both race for the author's row lock.
  const groups = targets.map((target) => (twice.has(target) ? [target, target] : [target]));
  return shuffle(groups).flat().map((target) => ({ target }));
}

/** Status and body of every DELETE against what its target calls for. */
function checkReplies(shots: readonly Shot[], failures: string[]): void {
  const byAuthor = new Map<number, Shot[]>();
  for (const shot of shots) {
    byAuthor.set(shot.target.id, [...(byAuthor.get(shot.target.id) ?? []), shot]);
    const problem = shot.error ?? (shot.reply && bodyProblem(shot.target.id, shot.reply));
    if (problem) {
      failures.push(`DELETE /authors/${shot.target.id}: ${problem}`);
    }
  }
  for (const [id, group] of byAuthor) {
    const { kind } = group[0]!.target;
    const got = group.map((s) => s.reply?.status ?? 'error').sort().join(',');
    const expected = { deletable: group.length === 1 ? ['202', '204'] : ['202,404', '204,404'], legalHold: ['409'], contract: ['409'], unknown: ['404'] }[kind];
    if (!expected.includes(got)) {
      failures.push(`author ${id} (${kind}, ${group.length} request(s)) answered ${got}, expected ${expected.join(' or ')}`);
    }
    const reason = kind === 'legalHold' ? 'book is under legal hold' : 'author is under contract until';
    const refusal = group[0]!.reply?.status === 409 ? (parse(group[0]!.reply.text) as { blockers: { reason: string }[] }) : undefined;
    if (refusal && (kind === 'legalHold' || kind === 'contract') && !refusal.blockers.some((b) => b.reason.startsWith(reason))) {
      failures.push(`author ${id} (${kind}) was refused for ${JSON.stringify(refusal.blockers)}`);
    }
  }
}

/** Why a DELETE's response is not a documented one, if it is not. */
function bodyProblem(id: number, reply: Reply): string | undefined {
  const body = parse(reply.text) as Record<string, unknown> | undefined;
  const wrong = (what: string) => `${reply.status} ${what}: ${reply.text.slice(0, 300)}`;
  switch (reply.status) {
    case 202: {
      const requestId = String(body?.requestId);
      const ok = body?.entity === 'Author' && body.id === id && body.status === 'pending' && UUID.test(requestId) && body.statusUrl === `/deletions/${requestId}`;
      return !ok ? wrong('body is not a receipt') : reply.location !== body.statusUrl ? wrong(`Location is ${reply.location}`) : undefined;
    }
    case 204:
      return reply.text === '' ? undefined : wrong('has a body');
    case 409:
      return body?.statusCode === 409 && body.code === 'DELETION_BLOCKED' && body.id === id && Array.isArray(body.blockers) && body.blockers.length > 0 ? undefined : wrong('body is not a refusal');
    case 404:
      return body?.statusCode === 404 && body.code === 'DELETION_TARGET_NOT_FOUND' && body.entity === 'Author' && body.id === id ? undefined : wrong('body is not a not-found');
    default:
      return wrong('is not an answer to a DELETE');
  }
}

/** Waits until every accepted request is completed; returns when the last one completed (epoch ms). */
async function drain(db: pg.Pool, requestIds: string[], failures: string[]): Promise<number | undefined> {
  const deadline = Date.now() + drainTimeoutMs;
  let reported = Date.now();
  for (;;) {
    const { rows } = await db.query<{ completed: number; failed: number; last: Date | null }>(
      `select count(*) filter (where r.state = 'completed' and r.id = r.root_id)::int as completed,
              count(*) filter (where r.state = 'failed')::int as failed,
              max(r.completed_at) filter (where r.id = r.root_id) as last
         from deletion_request r where r.root_id = any($1::uuid[])`,
      [requestIds],
    );
    const { completed, failed, last } = rows[0]!;
    if (completed === requestIds.length) {
      return last?.getTime();
    }
    if (failed > 0 || Date.now() > deadline) {
      failures.push(failed > 0 ? `${failed} deletion request(s) failed` : `only ${completed} of ${requestIds.length} deletions completed within ${drainTimeoutMs} ms`);
      return undefined;
    }
    if (Date.now() - reported > 5000) {
      reported = Date.now();
      process.stdout.write(`  draining: ${completed} of ${requestIds.length} deletions completed\n`);
    }
    await sleep(100);
  }
}

/** Every 202's `statusUrl` says `completed`, with no errors and every book and follower counted. */
async function checkStatuses(get: (path: string) => Promise<Reply>, accepted: readonly { id: number; statusUrl: string }[], failures: string[]): Promise<void> {
  await forEachLimit(accepted, 32, async ({ id, statusUrl }) => {
    const reply = await get(statusUrl);
    const status = parse(reply.text) as { state?: string; errors?: unknown[]; progress?: { path: string; processed: number }[] } | undefined;
    const processed = (path: string) => status?.progress?.find((p) => p.path === path)?.processed ?? 0;
    if (reply.status !== 200 || status?.state !== 'completed' || status.errors?.length !== 0 || processed('Author.books') !== shape.books || processed('Author.followers') !== shape.followers) {
      failures.push(`GET ${statusUrl} (author ${id}) answered ${reply.status}: ${reply.text.slice(0, 300)}`);
    }
  });
}

/** Accepted authors and their rows are gone (articles detached), refused ones whole, no request open. */
async function checkDatabase(db: pg.Pool, targets: readonly Target[], deleted: number[], failures: string[]): Promise<void> {
  const refused = targets.filter((t) => t.kind === 'legalHold' || t.kind === 'contract').map((t) => t.id);
  const gone = await footprint(db, deleted);
  if (Object.values(gone).some((n) => n !== 0)) {
    failures.push(`rows of deleted authors remain: ${JSON.stringify(gone)}`);
  }
  const n = refused.length;
  const whole: Footprint = { authors: n, visible: n, profiles: n, books: n * shape.books, reviews: n * shape.books * shape.reviewsPerBook, followers: n * shape.followers, articles: n * shape.articles };
  const kept = await footprint(db, refused);
  if (JSON.stringify(kept) !== JSON.stringify(whole)) {
    failures.push(`refused authors changed: ${JSON.stringify(kept)}, expected ${JSON.stringify(whole)}`);
  }
  const seeded = targets.length - countKind(targets, 'unknown');
  const { rows: articles } = await db.query<{ n: number }>('select count(*)::int as n from article');
  if (articles[0]!.n !== seeded * shape.articles) {
    failures.push(`${articles[0]!.n} articles left, expected all ${seeded * shape.articles} (nullify keeps them)`);
  }
  const { rows: states } = await db.query<{ state: string; n: number }>('select state, count(*)::int as n from deletion_request group by state');
  const open = states.filter((s) => s.state !== 'completed');
  if (open.length > 0) {
    failures.push(`deletion requests not completed: ${JSON.stringify(open)}`);
  }
}

async function footprint(db: pg.Pool, ids: number[]): Promise<Footprint> {
  const { rows } = await db.query<Footprint>(
    `select (select count(*) from author where id = any($1))::int as authors,
            (select count(*) from author where id = any($1) and deleted_at is null)::int as visible,
            (select count(*) from author_profile where author_id = any($1))::int as profiles,
            (select count(*) from book where author_id = any($1))::int as books,
            (select count(*) from review r join book b on b.id = r.book_id where b.author_id = any($1))::int as reviews,
            (select count(*) from follower where author_id = any($1))::int as followers,
            (select count(*) from article where author_id = any($1))::int as articles`,
    [ids],
  );
  return rows[0]!;
}

/** Rows a deletion removes, in every table. */
async function totalRows(db: pg.Pool): Promise<number> {
  const tables = ['author', 'author_profile', 'book', 'review', 'follower'];
  const { rows } = await db.query<{ n: number }>(`select (${tables.map((t) => `(select count(*) from ${t})`).join(' + ')})::int as n`);
  return rows[0]!.n;
}

/**
 * The sample app in a child process, as `npm start` runs it. Its log is kept out of the report
 * except for warnings and errors, which are collected (errors fail the run).
 */
class SampleAppProcess {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  private readonly tail: string[] = [];
  private readonly exited: Promise<number | null>;
  /** When the process exited (wall clock). */
  exitedAt?: number;

  private constructor(
    private readonly name: string,
    private readonly child: ChildProcess,
    /** The `.cpuprofile` it writes when it exits, if profiled. */
    readonly profileFile?: string,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.exitedAt = Date.now();
        resolve(code);
      }),
    );
    createInterface({ input: child.stdout! }).on('line', (line) => this.collect(line, /^\[Nest\] \d+ .*?\s(ERROR|FATAL)\s/.test(line) ? 'error' : / WARN /.test(line) ? 'warn' : 'log'));
    createInterface({ input: child.stderr! }).on('line', (line) => this.collect(line, 'error'));
  }

  static async start(name: string, port: number, url: string, profileDir?: string): Promise<SampleAppProcess> {
    const env = { ...process.env, NODE_OPTIONS: '', NO_COLOR: '1', DATABASE_URL: url, REDIS_URL, QUEUE_PREFIX: DATABASE, PORT: String(port) };
    const profileName = `${name}-${process.pid}.cpuprofile`;
    const profiling = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${profileName}`] : [];
    const args = [...profiling, '--import', '@swc-node/register/esm-register', 'sample-app/src/main.ts'];
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const app = new SampleAppProcess(name, child, profileDir ? join(resolvePath(profileDir), profileName) : undefined);
    const probe = new http.Agent({ keepAlive: false });
    const deadline = Date.now() + 120_000;
    try {
      for (;;) {
        const reply = await send(probe, port, 'GET', '/health').catch(() => undefined);
        if (reply?.status === 200) {
          return app;
        }
        if (child.exitCode !== null || Date.now() > deadline) {
          await app.stop();
          throw new Error(`${name} did not start on port ${port}:\n${app.tail.join('\n')}`);
        }
        await sleep(200);
      }
    } finally {
      probe.destroy();
    }
  }

  /** SIGTERM (the app closes its worker, queue and ORM), SIGKILL if it has not exited after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return;
    }
    this.child.kill('SIGTERM');
    // Unreferenced: the timer must not keep this process alive once the app has exited.
    const exited = await Promise.race([this.exited.then(() => true), sleep(30_000, false, { ref: false })]);
    if (!exited) {
      this.errors.push(`${this.name} did not exit within 30 s of SIGTERM`);
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  private collect(line: string, level: 'log' | 'warn' | 'error'): void {
    this.tail.push(line);
    if (this.tail.length > 40) {
      this.tail.shift();
    }
    if (level !== 'log') {
      (level === 'error' ? this.errors : this.warnings).push(`[${this.name}] ${line}`);
    }
  }
}

/** One HTTP request; the time runs from the call to the last byte of the response. */
function send(agent: http.Agent, port: number, method: string, path: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request({ host: '127.0.0.1', port, method, path, agent, headers, timeout: requestTimeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, location: response.headers.location, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }),
      );
    });
    request.on('timeout', () => request.destroy(new Error(`no response within ${requestTimeoutMs} ms`)));
    request.on('error', reject);
    request.end(payload);
  });
}

/** The parsed body of a reply that must have `status`, or an error naming what came instead. */
async function expectReply(sending: Promise<Reply>, status: number): Promise<unknown> {
  const reply = await sending;
  if (reply.status !== status) {
    throw new Error(`seeding: expected ${status}, got ${reply.status}: ${reply.text.slice(0, 300)}`);
  }
  return parse(reply.text);
}

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function shuffle<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function countKind(targets: readonly Target[], kind: Target['kind']): number {
  return targets.filter((t) => t.kind === kind).length;
}

function whole(name: string, fallback: number, min = 0): number {
  const value = process.env[name] ? Number(process.env[name]) : fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name}=${process.env[name]} is not a whole number of at least ${min}.`);
  }
  return value;
}

function share(name: string, fallback: number): number {
  const value = process.env[name] ? Number(process.env[name]) : fallback;
  if (!(value >= 0 && value <= 1)) {
    throw new Error(`${name}=${process.env[name]} is not a share from 0 to 1.`);
  }
  return value;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
