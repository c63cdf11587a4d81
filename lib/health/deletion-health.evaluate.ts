/** Job counts of the deletion queue, by BullMQ state. */
export interface DeletionQueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

/** The deletion requests' side of the health: what the outbox table says. */
export interface DeletionRequestCounts {
  /** Requests in state `failed`. */
  failedRequests: number;
  /** Age of the oldest `pending` or `running` request; `null` when there is none. */
  oldestPendingMs: number | null;
  /** Open requests the orphan sweeper filed for children whose parent was gone. */
  sweeperRequests: number;
}

/** What one health probe measured; a part that could not be measured carries its error instead. */
export interface DeletionHealthMeasurements {
  queue: DeletionQueueCounts | { error: string };
  requests: DeletionRequestCounts | { error: string };
}

/** The details the indicator reports: every figure that could be measured. */
export type DeletionHealthDetails = Partial<DeletionQueueCounts> & Partial<DeletionRequestCounts>;

/** The thresholds past which the deletion pipeline is `down`. */
export interface DeletionHealthThresholds {
  maxFailed: number;
  maxLagMs: number;
}

export type DeletionHealthVerdict =
  | { status: 'up'; details: DeletionHealthDetails }
  | { status: 'down'; reason: string; details: DeletionHealthDetails };

/**
 * Judges one probe's measurements. `down` when the queue or the requests could not be read, when
 * failed requests exceed `maxFailed`, or when the oldest open request is older than `maxLagMs`;
 * the reason names every cause at once, so one look at the health endpoint says what to fix.
 */
export function evaluateDeletionHealth(measurements: DeletionHealthMeasurements, thresholds: DeletionHealthThresholds): DeletionHealthVerdict {
  const { queue, requests } = measurements;
  const reasons: string[] = [];
  let details: DeletionHealthDetails = {};
  if ('error' in queue) {
    reasons.push(`queue unreachable: ${queue.error}`);
  } else {
    details = { ...details, waiting: queue.waiting, active: queue.active, delayed: queue.delayed, failed: queue.failed };
  }
  if ('error' in requests) {
    reasons.push(`deletion requests unreadable: ${requests.error}`);
  } else {
    details = { ...details, failedRequests: requests.failedRequests, oldestPendingMs: requests.oldestPendingMs, sweeperRequests: requests.sweeperRequests };
    if (requests.failedRequests > thresholds.maxFailed) {
      reasons.push(`${requests.failedRequests} failed deletion request(s), more than maxFailed ${thresholds.maxFailed}`);
    }
    if (requests.oldestPendingMs !== null && requests.oldestPendingMs > thresholds.maxLagMs) {
      reasons.push(`oldest pending deletion request is ${requests.oldestPendingMs} ms old, more than maxLagMs ${thresholds.maxLagMs}`);
    }
  }
  return reasons.length === 0 ? { status: 'up', details } : { status: 'down', reason: reasons.join('; '), details };
}
