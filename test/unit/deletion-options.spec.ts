import { describe, expect, it } from '@jest/globals';
import { DeletionConfigurationError, definePolicy } from '../../lib/index.js';
import { DEFAULT_BATCH_SIZE, resolveOptions } from '../../lib/deletion.options.js';

class Author {
  id!: number;
  books: object[] = [];
}

describe('resolveOptions', () => {
  it('defaults batchSize to 1000 and policies to none', () => {
    const resolved = resolveOptions({});

    expect(DEFAULT_BATCH_SIZE).toBe(1000);
    expect(resolved.batchSize).toBe(1000);
    expect(resolved.policies ?? []).toEqual([]);
  });

  it.each([1, 10, 5000])('keeps a batchSize of %p', (batchSize) => {
    expect(resolveOptions({ batchSize }).batchSize).toBe(batchSize);
  });

  it('keeps the declared policies as they are', () => {
    const policy = definePolicy(Author, { books: 'destroy' });

    expect(resolveOptions({ policies: [policy] }).policies).toEqual([policy]);
  });

  it('returns a frozen object and leaves its input alone', () => {
    const input = { batchSize: 50 };
    const resolved = resolveOptions(input);

    expect(Object.isFrozen(resolved)).toBe(true);
    expect(input).toEqual({ batchSize: 50 });
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10' as never])('rejects a batchSize of %p, naming the option and the fix', (batchSize) => {
    let error: unknown;
    try {
      resolveOptions({ batchSize });
    } catch (e) {
      error = e;
    }

    expect(error).toBeInstanceOf(DeletionConfigurationError);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_INVALID_OPTION', option: 'batchSize' });
    expect((error as Error).message).toMatch(/^batchSize: batchSize .* Fix: .*1 or more/);
    expect((error as Error).message).toContain(String(batchSize));
  });
});

describe('resolveOptions: worker.drainDelayMs', () => {
  it("defaults to BullMQ's own drain delay, 5,000 ms", () => {
    expect(resolveOptions({}).worker).toMatchObject({ drainDelayMs: 5_000 });
  });

  it.each([1, 250, 1_000, 60_000])('keeps a drain delay of %p ms', (drainDelayMs) => {
    expect(resolveOptions({ worker: { drainDelayMs } }).worker).toMatchObject({ drainDelayMs });
  });

  it('has no worker, so no drain delay, with worker: false', () => {
    expect(resolveOptions({ worker: false }).worker).toBe(false);
  });

  it.each([0, -1000, 0.5, 1500.5, Number.NaN, Number.POSITIVE_INFINITY, '1000' as never])(
    'rejects a drain delay of %p ms, naming the option and the fix',
    (drainDelayMs) => {
      let error: unknown;
      try {
        resolveOptions({ worker: { drainDelayMs } });
      } catch (e) {
        error = e;
      }

      expect(error).toBeInstanceOf(DeletionConfigurationError);
      expect(error).toMatchObject({ code: 'DELETION_CONFIG_INVALID_OPTION', option: 'worker.drainDelayMs' });
      expect((error as Error).message).toMatch(/^worker\.drainDelayMs: worker\.drainDelayMs .* Fix: .*1 or more \(default 5000\)/);
      expect((error as Error).message).toContain(String(drainDelayMs));
    },
  );
});
