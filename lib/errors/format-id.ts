/** An id or a list of ids for a message: long lists (a whole queued batch) are shortened. */
export function formatIds(id: unknown, max = 5): string {
  if (Array.isArray(id) && id.length > max) {
    return `[${id.slice(0, max).map((one) => JSON.stringify(one)).join(', ')}, … ${id.length} rows]`;
  }
  return typeof id === 'bigint' ? id.toString() : JSON.stringify(id);
}
