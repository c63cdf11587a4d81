import { describe, expect, it } from '@jest/globals';
import { evaluateDeletionHealth, type DeletionHealthMeasurements } from '../../lib/health/deletion-health.evaluate.js';

const thresholds = { maxFailed: 0, maxLagMs: 60_000 };
const idleQueue = { waiting: 0, active: 0, delayed: 0, failed: 0 };
const calm: DeletionHealthMeasurements = { queue: idleQueue, requests: { failedRequests: 0, oldestPendingMs: null, sweeperRequests: 0 } };

describe('evaluateDeletionHealth', () => {
  it('is up when everything was measured and nothing is past a threshold', () => {
    expect(evaluateDeletionHealth(calm, thresholds)).toEqual({
      status: 'up',
      details: { waiting: 0, active: 0, delayed: 0, failed: 0, failedRequests: 0, oldestPendingMs: null, sweeperRequests: 0 },
    });
  });

  it('reports the job counts as details without judging them', () => {
    const verdict = evaluateDeletionHealth({ ...calm, queue: { waiting: 12, active: 2, delayed: 3, failed: 4 } }, thresholds);
    expect(verdict).toEqual({ status: 'up', details: expect.objectContaining({ waiting: 12, active: 2, delayed: 3, failed: 4 }) });
  });

  it('is down when failed requests exceed maxFailed, and up at exactly maxFailed', () => {
    const failed = { ...calm, requests: { failedRequests: 2, oldestPendingMs: null, sweeperRequests: 0 } };
    expect(evaluateDeletionHealth(failed, { ...thresholds, maxFailed: 1 })).toEqual({
      status: 'down',
      reason: '2 failed deletion request(s), more than maxFailed 1',
      details: { ...idleQueue, failedRequests: 2, oldestPendingMs: null, sweeperRequests: 0 },
    });
    expect(evaluateDeletionHealth(failed, { ...thresholds, maxFailed: 2 }).status).toBe('up');
  });

  it('is down when the oldest pending request is older than maxLagMs, and up at exactly maxLagMs', () => {
    const lagging = (oldestPendingMs: number): DeletionHealthMeasurements => ({ ...calm, requests: { failedRequests: 0, oldestPendingMs, sweeperRequests: 0 } });
    expect(evaluateDeletionHealth(lagging(60_001), thresholds)).toMatchObject({
      status: 'down',
      reason: 'oldest pending deletion request is 60001 ms old, more than maxLagMs 60000',
    });
    expect(evaluateDeletionHealth(lagging(60_000), thresholds).status).toBe('up');
  });

  it('is down when the queue cannot be read, and keeps the request figures', () => {
    const verdict = evaluateDeletionHealth({ ...calm, queue: { error: 'connect ECONNREFUSED 127.0.0.1:1' } }, thresholds);
    expect(verdict).toEqual({
      status: 'down',
      reason: 'queue unreachable: connect ECONNREFUSED 127.0.0.1:1',
      details: { failedRequests: 0, oldestPendingMs: null, sweeperRequests: 0 },
    });
  });

  it('is down when the requests cannot be read, and keeps the job counts', () => {
    const verdict = evaluateDeletionHealth({ ...calm, requests: { error: 'relation "deletion_request" does not exist' } }, thresholds);
    expect(verdict).toEqual({
      status: 'down',
      reason: 'deletion requests unreadable: relation "deletion_request" does not exist',
      details: idleQueue,
    });
  });

  it('names every cause, in a stable order', () => {
    const verdict = evaluateDeletionHealth({ queue: { error: 'timeout' }, requests: { failedRequests: 3, oldestPendingMs: 120_000, sweeperRequests: 0 } }, thresholds);
    expect(verdict.status === 'down' && verdict.reason).toBe(
      'queue unreachable: timeout; 3 failed deletion request(s), more than maxFailed 0; oldest pending deletion request is 120000 ms old, more than maxLagMs 60000',
    );
  });
});
