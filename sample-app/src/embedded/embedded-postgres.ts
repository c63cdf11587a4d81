import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Logger, type OnApplicationShutdown } from '@nestjs/common';

/** `dataDir` value that keeps the embedded database in memory (gone when the process ends). */
export const IN_MEMORY = 'memory';

export interface EmbeddedPostgresOptions {
  /** A directory (created if missing; its data survives restarts) or `'memory'`. */
  dataDir: string;
  /**
   * The schema of BullMQ's PostgreSQL backend, created and put on the search path after `public`
   * (`SET search_path TO public, <schema>`). BullMQ's pool asks for it with a `search_path` startup
   * option, which PGlite ignores; `public` stays first so that MikroORM's unqualified
   * `create table` still lands in `public` (with the queue's schema first it would land there,
   * and MikroORM's schema update would then try to drop that schema).
   */
  queueSchema?: string;
  /**
   * Socket connections accepted at once (PGlite's default is 1). MikroORM's pool, and BullMQ's
   * queue and worker (a pool and a LISTEN client each) all connect. Default 50.
   */
  maxConnections?: number;
}

/**
 * PostgreSQL in the process: PGlite (PostgreSQL compiled to WASM) served over TCP on 127.0.0.1
 * and a free port by `@electric-sql/pglite-socket`, so MikroORM and BullMQ connect with `pg` as to
 * a real server. For the sample app only (`npm start` with no `DATABASE_URL`). What differs from a
 * real server: every connection shares ONE session (while one is inside a transaction the others
 * wait; a `SET` on one is seen by all), startup options are ignored, LISTEN/NOTIFY is not
 * delivered across connections, and there is one database (`postgres`).
 *
 * Provided through `EmbeddedPostgresModule`, whose shutdown hook Nest calls after every other
 * module's (ORM, queue and worker closed first): PGlite is then closed cleanly. A directory is
 * locked (`<dataDir>.lock`) while in use.
 */
export class EmbeddedPostgres implements OnApplicationShutdown {
  private readonly logger = new Logger(EmbeddedPostgres.name);
  private stopping?: Promise<void>;

  private constructor(
    private readonly db: PGlite,
    private readonly server: PGLiteSocketServer,
    /** Where the data is: a directory, or `'memory'`. */
    readonly dataDir: string,
    private readonly lockFile: string | undefined,
  ) {}

  /** Starts PGlite and its socket server; resolves once connections are accepted. */
  static async start(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
    const inMemory = options.dataDir === IN_MEMORY;
    const lockFile = inMemory ? undefined : await lockDataDir(options.dataDir);
    let db: PGlite | undefined;
    try {
      db = await PGlite.create(inMemory ? undefined : options.dataDir);
      if (options.queueSchema) {
        const schema = quoteIdentifier(options.queueSchema);
        // Session-wide, and every socket connection shares this one session.
        await db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO public, ${schema};`);
      }
      const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: options.maxConnections ?? 50 });
      await server.start();
      return new EmbeddedPostgres(db, server, options.dataDir, lockFile);
    } catch (error) {
      await db?.close().catch(() => undefined);
      if (lockFile) {
        await rm(lockFile, { force: true });
      }
      throw error;
    }
  }

  /** `postgresql://postgres@127.0.0.1:<port>/postgres`: PGlite has the one database `postgres`. */
  get url(): string {
    return `postgresql://postgres@${this.server.getServerConn()}/postgres`;
  }

  /** Stops accepting connections, closes the open ones, then closes PGlite (flushing its data directory). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // Clients closed just before (ORM, queue, worker) are seen gone a moment later: wait for them a little.
      const deadline = Date.now() + 1000;
      while (this.server.getStats().activeConnections > 0 && Date.now() < deadline) {
        await sleep(20);
      }
      const { activeConnections } = this.server.getStats();
      try {
        await this.server.stop();
      } finally {
        if (!this.db.closed) {
          await this.db.close();
        }
        if (this.lockFile) {
          await rm(this.lockFile, { force: true });
        }
      }
      const open = activeConnections > 0 ? ` (${activeConnections} connections still open were closed)` : '';
      this.logger.log(`Embedded PostgreSQL stopped${open}`);
    })();
    return this.stopping;
  }

  onApplicationShutdown(): Promise<void> {
    return this.stop();
  }
}

/**
 * PGlite does not guard its data directory: two processes on one directory would corrupt it. So
 * `<dataDir>.lock` holds the owner's pid; a lock whose process is gone (killed) is taken over.
 */
async function lockDataDir(dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true });
  const lockFile = `${dataDir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: 'wx' });
      return lockFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw error;
      }
    }
    const owner = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new Error(
        `the embedded PostgreSQL's data directory ${dataDir} is in use by process ${owner} (${lockFile}). ` +
          'Stop that process, or set PGLITE_DATA_DIR to another directory (or to "memory").',
      );
    }
    await rm(lockFile, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
