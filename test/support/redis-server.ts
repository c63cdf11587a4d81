import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { unusedPort } from './ports.js';

/**
 * A throw-away redis-server of a test's own, on a free port, that the test may kill and start
 * again (on the same port, with nothing kept on disk) without touching the shared Redis on 6379.
 * Always call `stop()` in `afterAll`.
 */
export class DisposableRedis {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<DisposableRedis> {
    const redis = new DisposableRedis(await unusedPort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the server (again) on the same port, with an empty data set, and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.running) {
      throw new Error(`redis-server on port ${this.port} is already running`);
    }
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${this.port}`);
      }
      await sleep(25);
    }
  }

  /** Kills the server without warning (SIGKILL): every job, lock and scheduler in it is lost. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) {
      return;
    }
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills the server if it runs; for `afterAll`. */
  async stop(): Promise<void> {
    await this.kill();
    this.child = undefined;
  }
}

/** Sends a raw PING; true when the server answers PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** The part of BullMQ's worker internals `workerReconnected` looks at. */
interface WorkerConnections {
  backend?: { blockingConnection?: { client: Promise<{ status: string }> } };
}

/**
 * Resolves once the worker's blocking Redis connection is `ready` again after a Redis restart.
 * Close the app only then: BullMQ 6.7.0's Worker.close() disconnects that connection and waits for
 * its 'end' event, which ioredis 6 never emits for a client that is still `reconnecting` (its
 * disconnect() only clears the retry timer), so closing too early hangs forever.
 */
export async function workerReconnected(worker: object, timeoutMs = 20_000): Promise<void> {
  const blocking = (worker as WorkerConnections).backend?.blockingConnection;
  if (!blocking) {
    return;
  }
  const client = await blocking.client;
  const deadline = Date.now() + timeoutMs;
  while (client.status !== 'ready' && client.status !== 'end' && Date.now() < deadline) {
    await sleep(50);
  }
}
