/** An id or a list of ids for a message: long lists (a whole queued batch) are shortened. */
export function formatIds(id: unknown, max = 5): string {
  if (Array.isArray(id)) {
    const shown = id.slice(0, max).map((one) => formatIds(one, max));
    return id.length > max ? `[${shown.join(', ')}, … ${id.length} rows]` : `[${shown.join(', ')}]`;
  }
  // A bigint key (JSON.stringify cannot print one) as its digits.
  return typeof id === 'bigint' ? id.toString() : JSON.stringify(id);
}
