const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` can be a deletion request id (a UUID), before it reaches the database. */
export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
